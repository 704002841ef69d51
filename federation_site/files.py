"""Writing files so that readers see the old content or the new, never half of it."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path


def write_atomic(path: Path, content: bytes, *, mode: int | None = None) -> None:
    """Replace `path` with `content` atomically: temp file in the same directory, fsync, rename, fsync dir.
    The file keeps its permissions unless `mode` is given; a new one gets the umask's."""
    write_atomic_chunks(path, (content,), mode=mode)


def write_atomic_chunks(path: Path, chunks: Iterable[bytes], *, mode: int | None = None) -> None:
    """`write_atomic` for content produced piece by piece (an archive of many rows): `path` appears whole, with
    every chunk, or not at all (an exception from `chunks` leaves no file behind)."""
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = None
    while True:
        tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            # 0o666 so that, for a new file, the process umask applies as for any other file we create.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fh.fileno(), mode)
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # platforms that cannot open a directory (Windows) cannot fsync it either
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def ensure_lines(path: Path, lines: Iterable[str], *, header: str) -> list[str]:
    """Append to the text file `path` (a .gitignore) those of `lines` it lacks, under a `header` comment line;
    returns what was added."""
    path = Path(path)
    existing = path.read_text().splitlines() if path.exists() else []
    missing = [line for line in lines if line not in existing]
    if missing:
        text = path.read_text() if path.exists() else ""
        if text and not text.endswith("\n"):
            text += "\n"
        text += f"# {header}\n" + "".join(f"{m}\n" for m in missing)
        write_atomic(path, text.encode())
    return missing
