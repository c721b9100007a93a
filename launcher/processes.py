"""Sharing one embedded server between processes: who is still using it?"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PidRegistry:
    """A file-locked list of the pids using a shared resource.

    Dead pids (a process killed with -9) are dropped whenever the list is read,
    so the last live process can still tell it is the last.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def locked(self) -> Iterator[list[int]]:
        """The live pids, under an exclusive lock; changes to the list are saved."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with (self.path.parent / f"{self.path.name}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                pids = [p for p in self._read() if pid_alive(p)]
                yield pids
                self.path.write_text(json.dumps(sorted(set(pids))))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> list[int]:
        try:
            return [int(p) for p in json.loads(self.path.read_text())]
        except (FileNotFoundError, ValueError, TypeError):
            return []
