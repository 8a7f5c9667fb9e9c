"""One writer per output: ``OUT/.vlir/lock`` holds the running build's pid and host.

Why: two builds into one OUT raced on the same temp and shard names (7 of 10 races ended in a
``FileNotFoundError`` traceback). The lock is created with ``O_CREAT | O_EXCL`` (atomic on local
filesystems and NFSv3+), so exactly one process gets it; a second build fails fast with a one-line
:class:`OutputLocked`. A lock left by a killed build (its pid is dead on this host) is taken over;
a lock from another host is never guessed stale: the message says which host to check.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from vlir.corpus.layout import lock_path


class OutputLocked(Exception):
    """Another live process holds the output's lock."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class OutputLock:
    """Context manager: hold ``OUT/.vlir/lock`` for the duration of a build or merge."""

    def __init__(self, out: Path, num_shards: int = 1, shard_index: int = 0):
        self.out = Path(out)
        self.path = lock_path(self.out, num_shards, shard_index)
        self.me = {"pid": os.getpid(), "host": socket.gethostname()}
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(50):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _holder(self.path)
                if holder is None:  # released meanwhile
                    continue
                pid, host = holder.get("pid"), holder.get("host")
                if not holder and attempt < 20:  # being written by its creator: look again
                    time.sleep(0.05)
                    continue
                if host == self.me["host"] and isinstance(pid, int) and not _pid_alive(pid):
                    self.path.unlink(missing_ok=True)  # stale: its build was killed
                    continue
                who = f"pid {pid} on {host}" if holder else "an unknown process (unreadable lock)"
                raise OutputLocked(f"{self.out} is being built by {who}; wait for it to finish, or "
                                   f"delete {self.path} if that build is gone") from None
            with os.fdopen(fd, "w") as fh:
                json.dump(self.me, fh)
            self.held = True
            return
        raise OutputLocked(f"{self.out}: could not take {self.path} (contended); try again")

    def release(self) -> None:
        if self.held and _holder(self.path) == self.me:
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
