"""A cross-process lock per JSONL file, so writers on this machine (the web process, workers, the CLI) queue
instead of racing. Tools that don't take it (the sudocode CLI, an editor) are caught by the check-before-rename
in `tracker.sync.write_through`."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The locks this thread holds, by path, with how deep: taking a held lock again is a no-op (flock on a second
# descriptor of the same file would wait for ourselves), so a service holding it may call another that takes it.
_held = threading.local()


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold the exclusive lock of `path` (created if missing) for the block; re-entrant within a thread."""
    held: dict[str, int] = _held.__dict__.setdefault("depth", {})
    key = str(path)
    if key in held:
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held[key] = 1
        try:
            yield
        finally:
            del held[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
