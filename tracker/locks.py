"""A cross-process lock per JSONL file, so writers on this machine (the web process, workers, the CLI) queue
instead of racing. Tools that don't take it (the sudocode CLI, an editor) are caught by the check-before-rename
in `tracker.sync.write_through`."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
