"""Progress bars with an ETA for long work (build, eval, training), written once.

A bar shows when stderr is a terminal and the run is not quiet: ``vlir -q`` / ``--log-level
WARNING`` set ``VLIR_QUIET=1`` (inherited by build workers and DeepSpeed ranks); logs, CI and pipes
get no bar (tqdm's ``disable=None``). With a ``total`` tqdm shows the rate and the time left.
"""

from __future__ import annotations

import os
from typing import Any

QUIET_ENV = "VLIR_QUIET"


def quiet() -> bool:
    return os.environ.get(QUIET_ENV) == "1"


def set_quiet(flag: bool) -> None:
    """Turn every later bar off (the CLI root's ``-q``), in this process and its children."""
    if flag:
        os.environ[QUIET_ENV] = "1"
    else:
        os.environ.pop(QUIET_ENV, None)


def bar(total: int | None = None, desc: str = "", unit: str = "it", enabled: bool = True, **kwargs: Any):
    """A tqdm bar (``with bar(...) as b: b.update(n)``); off when quiet, when not ``enabled`` (a
    training rank other than 0) or when stderr is not a TTY."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, mininterval=0.5,
                disable=True if quiet() or not enabled else None, **kwargs)
