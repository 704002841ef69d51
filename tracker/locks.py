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


class Held:
    """A lock held by `file_lock`: `release()` lets it go before the block ends (idempotent; a no-op for a lock
    taken again inside one this thread already holds)."""

    def __init__(self, key: str, fd: int | None) -> None:
        self.key, self.fd = key, fd

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        _held.__dict__.get("depth", {}).pop(self.key, None)
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


@contextmanager
def file_lock(path: Path) -> Iterator[Held]:
    """Hold the exclusive lock of `path` (created if missing) for the block; re-entrant within a thread."""
    held: dict[str, int] = _held.__dict__.setdefault("depth", {})
    key = str(path)
    if key in held:
        held[key] += 1
        try:
            yield Held(key, None)
        finally:
            if key in held:
                held[key] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    held[key] = 1
    lock = Held(key, fd)
    try:
        yield lock
    finally:
        lock.release()
