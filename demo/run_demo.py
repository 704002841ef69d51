"""`make demo`: a demo repository with the project's demo data, served by a real node.

Builds var/demo/frontend (a fresh git repository holding demo/data/frontend, the seed's Use Case 1 from the
frontend's side), runs `sudocode-fed init` and a few commands in it, printing each one with its output, then
serves it and prints the URLs to open. Ctrl-C stops the node. DEMO_PORT changes the port (default 8000).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "demo" / "data"
WORK = ROOT / "var" / "demo"
BIN = Path(sys.executable).parent
FED = str(BIN / "sudocode-fed")
DEMO_USER, DEMO_PASSWORD = "demo", "demo"


def env_for(repo: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env["SUDOCODE_REPO"] = str(repo)
    return env


def run(args: list[str], *, cwd: Path, show: bool = True, env: dict | None = None) -> str:
    if show:
        print(f"\n$ {' '.join(a if ' ' not in a else repr(a) for a in args)}", flush=True)
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env or env_for(cwd))
    output = (result.stdout + result.stderr).rstrip()
    if show and output:
        print(output, flush=True)
    if result.returncode != 0:
        sys.exit(f"demo step failed ({result.returncode}): {' '.join(args)}\n{output}")
    return output


def make_repo(name: str, origin: str) -> Path:
    repo = WORK / name
    if repo.exists():
        shutil.rmtree(repo)
    (repo / ".sudocode").mkdir(parents=True)
    for f in ("issues.jsonl", "specs.jsonl"):
        shutil.copyfile(DATA / name / f, repo / ".sudocode" / f)
    for args in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.name", "Demo Maintainer"],
        ["git", "config", "user.email", "demo@example.com"],
        ["git", "remote", "add", "origin", origin],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "Demo data"],
    ):
        run(args, cwd=repo, show=False)
    return repo


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the node exited with code {proc.returncode}; see its output above")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"the node did not answer on port {port} within {timeout:.0f}s")


def main() -> None:
    port = int(os.environ.get("DEMO_PORT", "8000"))
    print(f"Building the demo repository in {WORK / 'frontend'} ...")
    repo = make_repo("frontend", "git@github.com:org/frontend.git")
    run([FED, "init", "--display-name", "Frontend"], cwd=repo)
    run(["git", "add", "-A"], cwd=repo, show=False)
    run(["git", "commit", "-q", "-m", "Set up sudocode federation"], cwd=repo, show=False)
    run([FED, "issue", "list"], cwd=repo)
    run([FED, "issue", "show", "issue-101"], cwd=repo)
    run(
        [
            FED,
            "issue",
            "create",
            "Show recent activity on the profile",
            "-p",
            "2",
            "--tags",
            "ui,profile",
            "--implements",
            "spec-020",
            "--depends-on",
            "issue-100",
        ],
        cwd=repo,
    )
    # The dashboard's login: a staff user in this node's database.
    manage = [sys.executable, str(ROOT / "manage.py")]
    run([*manage, "migrate", "--verbosity", "0"], cwd=repo, show=False)
    env = env_for(repo) | {
        "DJANGO_SUPERUSER_USERNAME": DEMO_USER,
        "DJANGO_SUPERUSER_PASSWORD": DEMO_PASSWORD,
        "DJANGO_SUPERUSER_EMAIL": "demo@example.com",
    }
    run([*manage, "createsuperuser", "--noinput"], cwd=repo, show=False, env=env)

    print(f"\n$ sudocode-fed serve --port {port}", flush=True)
    node = subprocess.Popen([FED, "serve", "--port", str(port)], cwd=repo, env=env_for(repo))
    try:
        wait_for_port(port, node)
        base = f"http://127.0.0.1:{port}"
        print(
            f"""
The frontend node is up. Open:
  {base}/                    issues and specs, with relationships
  {base}/issues/issue-101    one issue: blockers, relationships, references
  {base}/admin/              the admin (login: {DEMO_USER} / {DEMO_PASSWORD})
  {base}/api/docs/           the API (OpenAPI at {base}/api/schema/)
  {base}/api/v1/issues       the read API

Try the CLI in another terminal:  cd {repo} && {FED} issue list
Press Ctrl-C to stop the node.""",
            flush=True,
        )
        node.wait()
    except KeyboardInterrupt:
        print("\nStopping the node ...")
    finally:
        if node.poll() is None:
            node.terminate()
            try:
                node.wait(10)
            except subprocess.TimeoutExpired:
                node.kill()


if __name__ == "__main__":
    main()
