"""How the CLI prints: tables for people, JSON for scripts (`--format json`)."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import Any


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str], *, wrap_last: bool = True) -> None:
    """Columns sized to their content. With `wrap_last`, the last column (an error, a title) fits the terminal by
    wrapping onto indented lines, whole: a cut error ("POST http…") tells nothing."""
    cells = [[("" if c is None else str(c)).replace("\n", " ") for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    if wrap_last and cells:
        term = shutil.get_terminal_size((120, 20)).columns
        used = sum(widths[:-1]) + 2 * (len(widths) - 1)
        widths[-1] = max(len(headers[-1]), 20, min(widths[-1], term - used))
    out = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    indent = " " * (sum(widths[:-1]) + 2 * (len(widths) - 1))
    for r in cells:
        last = textwrap.wrap(r[-1], widths[-1], break_on_hyphens=False) or [""] if wrap_last else [r[-1]]
        line = "  ".join(_cut(c, w) for c, w in zip([*r[:-1], last[0]], widths, strict=True))
        out.append(line.rstrip())
        out.extend(indent + more for more in last[1:])
    sys.stdout.write("\n".join(out) + "\n")


def _cut(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[: max(width - 1, 0)] + "…"


def warn(message: str) -> None:
    if _structured():
        logging.getLogger("sudocode.cli").warning(message)
    else:
        sys.stderr.write(f"warning: {message}\n")


def note(message: str) -> None:
    if _structured():
        logging.getLogger("sudocode.cli").info(message)
    else:
        sys.stderr.write(f"{message}\n")


def _structured() -> bool:
    """Under `serve` (SUDOCODE_LOG_FORMAT, federation_site/logs.py) stderr is the log: one JSON object per line."""
    from federation_site.logs import log_format

    return log_format() is not None
