"""How the CLI prints a table: columns sized to their content, the last one wrapped whole to the terminal."""

from __future__ import annotations

from sudocode_cli.output import print_table

ERROR = (
    "POST http://127.0.0.1:8001/api/v1/federation/subscribe: 403 Forbidden "
    '{"error": "forbidden", "message": "untrusted remotes may not subscribe"}'
)


def test_the_last_column_wraps_whole_under_itself(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")

    print_table([("sub-1", "outgoing", "retrying", ERROR), ("sub-2", "incoming", "delivered", "")],
                ("id", "dir", "delivery", "last error"))  # fmt: skip

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "DIR", "DELIVERY", "LAST", "ERROR"]
    start = lines[0].index("LAST ERROR")
    assert all(len(line) <= 80 for line in lines)
    wrapped = [line for line in lines[1:] if not line.startswith("sub-2")]
    assert all(line[:start].strip() in ("", "sub-1  outgoing  retrying") for line in wrapped)
    assert " ".join(line[start:] for line in wrapped).replace("  ", " ") == ERROR
    assert lines[-1].split() == ["sub-2", "incoming", "delivered"]
