"""What the benchmark scripts share: where the corpus is, which data set is largest, percentiles, progress."""

from __future__ import annotations

import math
import os
import platform
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def machine() -> dict:
    """What a figure was measured on: `{"python", "cpus", "load_average": [1, 5, 15 minutes]}` (other work on
    the machine slows every figure)."""
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average": os.getloadavg()}


def corpus_dir() -> Path:
    # Same rule as tests/corpus.py, which imports pytest and so is not for a script.
    configured = os.environ.get("SUDOCODE_CORPUS")
    return Path(configured) if configured else (REPO_ROOT.parent / "shared" / "corpus").resolve()


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def largest_dataset(root: Path) -> str:
    folders = [p for p in root.iterdir() if p.is_dir() and (p / "issues.jsonl").exists()]
    if not folders:
        raise SystemExit(f"no data set with an issues.jsonl in {root}")
    return max(folders, key=lambda p: (count_lines(p / "issues.jsonl"), p.name)).name


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(len(ordered) * fraction))
    return ordered[rank - 1]


def django_in_new_repo(root: Path, *, env: dict[str, str] | None = None) -> Path:
    """A fresh repository `root`/repo (an empty `.sudocode/`) with Django set up on it in this process, on its own
    SQLite database (the embedded default), migrated. `env`: more environment first. Returns the repository."""
    repo = root / "repo"
    (repo / ".sudocode").mkdir(parents=True)
    os.environ["SUDOCODE_REPO"] = str(repo)
    os.environ["DJANGO_SETTINGS_MODULE"] = "federation_site.settings"
    os.environ.pop("DATABASE_URL", None)
    os.environ.update(env or {})
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return repo


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants alive now (Linux /proc; just [pid] elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        one = todo.pop()
        out.append(one)
        todo.extend(children.get(one, ()))
    return out


def process_kind(pid: int) -> str | None:
    """What a process of a node runs: "web (daphne)", "celery worker", "celery beat" or "serve" (None: gone)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if "webprocess" in cmdline or "daphne" in cmdline:
        return "web (daphne)"
    if "celery" in cmdline:
        return "celery beat" if " beat" in cmdline else "celery worker"
    return "serve"


def peak_memory(pid: int) -> list[dict]:
    """The peak resident memory (VmHWM, MiB) of `pid` and each descendant, with what each runs."""
    out = []
    for one in process_tree(pid):
        try:
            status = Path(f"/proc/{one}/status").read_text()
        except OSError:
            continue
        what = process_kind(one)
        hwm = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")), None)
        if hwm is not None and what is not None:
            out.append({"pid": one, "process": what, "peak_rss_mib": round(int(hwm) / 1024, 1)})
    return out


def cpu_seconds(pid: int, *, kind: str | None = None) -> float | None:
    """User + system CPU time of a process and its descendants alive now (Linux /proc: `serve --workers N`'s
    web processes are children of the one started), or None elsewhere. `kind`: only the processes of that
    `process_kind` (e.g. "web (daphne)")."""
    total = None
    for one in process_tree(pid):
        if kind is not None and process_kind(one) != kind:
            continue
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total = (total or 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return total


def wrk_load(url: str, *, body: bytes | None, headers: dict[str, str], concurrency: int, seconds: float) -> dict:
    """Load `url` with wrk (one thread, `concurrency` connections, `seconds`): GET, or POST `body`. Returns
    figures shaped like bench_query's: requests, errors, seconds, throughput_rps, latency_ms (p50/p75/p90/p99)."""
    import re
    import subprocess
    import tempfile

    lines = [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    if body is not None:
        lines += ['wrk.method = "POST"', f"wrk.body = {json_lua(body.decode())}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines) + "\n")
    try:
        run = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency", "-s", script.name, url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    finally:
        os.unlink(script.name)
    out = run.stdout
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    latency = {
        f"p{m[1]}": round(float(m[2]) * units[m[3]], 2)
        for m in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    done = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {
        "client": "wrk -t1",
        "requests": int(done[1]) if done else 0,
        "errors": (int(bad[1]) if bad else 0) + (sum(int(x) for x in errors.groups()) if errors else 0),
        "seconds": seconds,
        "throughput_rps": float(rps[1]) if rps else None,
        "latency_ms": latency,
        **({"wrk_output": out[-800:] + run.stderr[-400:]} if run.returncode or not rps else {}),
    }


def json_lua(text: str) -> str:
    """`text` as a Lua string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
