"""How long a Prometheus scrape of `/metrics` takes (issue 15: under 10 ms).

Starts a real node (`sudocode-fed serve` with its worker and beat, so the multiprocess folder holds several
processes' files) in a fresh git repository with `--remotes` remotes declared, sends `--calls` federated queries
spread over those remotes (each one an audit row, so labelled counter and histogram series), then times
`GET /metrics` with the metrics token (a keep-alive session, as a scraper holds), `--scrapes` times after a
warm-up, and `GET /api/v1/health` as many times (a small JSON view behind the same middleware, for
comparison). The figure is the client's wall time per scrape: the node reads every process's files, the database
gauges (four small aggregate queries), and renders the text. Prints one JSON document on stdout; progress goes
to stderr. Nothing is asserted about the times.

    .venv/bin/python benchmarks/bench_metrics.py [--scrapes 200] [--remotes 10] [--calls 300]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from common import REPO_ROOT, machine, percentile, progress

CLI = [sys.executable, "-m", "sudocode_cli.main"]
TOKEN = "bench-metrics-token"
_FOREIGN_ENV = ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "SUDOCODE_REPO", "SUDOCODE_FED_CLI", "DEBUG", "LOG_LEVEL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str, repo: Path, env: dict) -> str:
    result = subprocess.run([*CLI, "--repo", str(repo), *args], env=env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: {result.stderr}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapes", type=int, default=200, help="timed scrapes (default: %(default)s)")
    parser.add_argument("--remotes", type=int, default=10, help="remotes declared and calling (default: %(default)s)")
    parser.add_argument("--calls", type=int, default=300, help="queries sent before scraping (default: %(default)s)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "api-service"
        repo.mkdir()
        for git in (["init", "-q"], ["remote", "add", "origin", "git@github.com:org/api-service.git"]):
            subprocess.run(["git", "-C", str(repo), *git], check=True)
        run("init", repo=repo, env=env)
        with (repo / ".sudocode" / "secrets.env").open("a") as fh:
            fh.write(f"METRICS_TOKEN={TOKEN}\n")
        keys = []
        progress(f"declaring {args.remotes} remotes")
        for i in range(args.remotes):
            out = run("remote", "add", f"github.com/org/client-{i}", "--trust", "verified", "--no-discover",
                      repo=repo, env=env)  # fmt: skip
            keys.append(next(line.strip() for line in out.splitlines() if line.strip().startswith("sfk_")))
        port = free_port()
        log = Path(tmp) / "node.log"
        with log.open("w") as err:
            proc = subprocess.Popen(
                [*CLI, "--repo", str(repo), "serve", "--port", str(port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit(f"the node did not start:\n{log.read_text()[-3000:]}") from None
                    time.sleep(0.1)
            progress(f"sending {args.calls} queries")
            callers = [requests.Session() for _ in keys]
            for session, key in zip(callers, keys, strict=True):
                session.headers["Authorization"] = f"Bearer {key}"
            bodies = [{"entity": "issue", "limit": 5}, {"entity": "spec", "limit": 5}, {"entity": "nothing"}]
            for n in range(args.calls):
                callers[n % len(callers)].post(f"{base}/api/v1/federation/query", json=bodies[n % 3], timeout=30)
            scraper = requests.Session()
            scraper.headers["Authorization"] = f"Bearer {TOKEN}"
            # Wait for the worker's heartbeat, so its process is up (and counted) while we scrape.
            deadline = time.monotonic() + 30
            while "sudocode_worker_up 1.0" not in scraper.get(f"{base}/metrics", timeout=10).text:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            for _ in range(20):
                scraper.get(f"{base}/metrics", timeout=10)
            progress(f"timing {args.scrapes} scrapes")
            samples, size, lines = [], 0, 0
            for _ in range(args.scrapes):
                started = time.perf_counter()
                response = scraper.get(f"{base}/metrics", timeout=10)
                samples.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
                size = len(response.content)
                lines = sum(1 for line in response.text.splitlines() if line and not line.startswith("#"))
            # For comparison: the health check, a small JSON view behind the same middleware.
            floor = []
            for _ in range(args.scrapes):
                started = time.perf_counter()
                scraper.get(f"{base}/api/v1/health", timeout=10)
                floor.append((time.perf_counter() - started) * 1000)
            files = sorted(p.name for p in (repo / ".sudocode" / "metrics").glob("*.db"))
        finally:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
    print(
        json.dumps(
            {
                "benchmark": "metrics_scrape",
                "target_ms": 10,
                "scrapes": len(samples),
                "p50_ms": round(percentile(samples, 0.5), 3),
                "p90_ms": round(percentile(samples, 0.9), 3),
                "p99_ms": round(percentile(samples, 0.99), 3),
                "max_ms": round(max(samples), 3),
                "health_check_p50_ms": round(percentile(floor, 0.5), 3),
                "body_bytes": size,
                "samples_in_body": lines,
                "remotes": args.remotes,
                "calls_before": args.calls,
                "process_files": len(files),
                "processes": len({name.rsplit("_", 1)[-1] for name in files}),
                "machine": machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
