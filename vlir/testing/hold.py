"""A test hook that holds build tasks at a known point, so a test that stops a build (a signal,
a kill) always meets running work instead of racing a build that may already have ended on a
loaded machine.

With ``VLIR_TEST_HOLD_DIR=<folder>`` in the environment, each build task whose number is at least
``VLIR_TEST_HOLD_FROM`` (default 0) creates ``<folder>/held-<source>-<split>-<task>`` as it
starts, then waits until ``<folder>/release`` exists. Unset (always, outside tests), it costs one
environment lookup per task. The executors call :func:`hold_point` before a task runs, in
whichever process runs it (this one, a forked worker, a Ray worker).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

HOLD_DIR, HOLD_FROM = "VLIR_TEST_HOLD_DIR", "VLIR_TEST_HOLD_FROM"


def hold_point(source: str, split: str, task: int) -> None:
    folder = os.environ.get(HOLD_DIR)
    if not folder or task < int(os.environ.get(HOLD_FROM, "0")):
        return
    folder_path = Path(folder)
    (folder_path / f"held-{source}-{split}-{task}").touch()
    while not (folder_path / "release").exists():
        time.sleep(0.01)
