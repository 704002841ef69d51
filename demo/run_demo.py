"""`make demo`: the seed's Use Case 1 on two real nodes.

Builds var/demo/frontend and var/demo/api-service (fresh git repositories holding demo/data/*), serves each
(daphne, a Celery worker and beat), links them, and plays Use Case 1 through the CLI, printing each command with
its output: frontend asks api-service for an endpoint, a maintainer approves, frontend's issue becomes blocked by
the new remote issue and frontend subscribes to it; api-service closes it and frontend's issue unblocks itself
(a signed webhook, no sync). Then both dashboards stay up. Ctrl-C stops them. DEMO_PORT sets the first port (8000).
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


def make_node(name: str, display: str) -> Path:
    repo = make_repo(name, f"git@github.com:org/{name}.git")
    run([FED, "init", "--display-name", display], cwd=repo, show=False)
    run(["git", "add", "-A"], cwd=repo, show=False)
    run(["git", "commit", "-q", "-m", "Set up sudocode federation"], cwd=repo, show=False)
    # The dashboard's login: a staff user in this node's database.
    manage = [sys.executable, str(ROOT / "manage.py")]
    run([*manage, "migrate", "--verbosity", "0"], cwd=repo, show=False)
    env = env_for(repo) | {
        "DJANGO_SUPERUSER_USERNAME": DEMO_USER,
        "DJANGO_SUPERUSER_PASSWORD": DEMO_PASSWORD,
        "DJANGO_SUPERUSER_EMAIL": "demo@example.com",
    }
    run([*manage, "createsuperuser", "--noinput"], cwd=repo, show=False, env=env)
    return repo


def key_from(output: str) -> str:
    return next(line.strip() for line in output.splitlines() if line.strip().startswith("sfk_"))


def _line_of(path: Path, entity_id: str) -> str:
    """The JSONL line of one entity, read straight from the file (asking the node would refresh it)."""
    marker = f'"id":"{entity_id}"'
    return next(
        (line.replace(" ", "") for line in path.read_text().splitlines() if marker in line.replace(" ", "")), ""
    )


def serve(repo: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [FED, "serve", "--port", str(port)],
        cwd=repo,
        env=env_for(repo),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    port = int(os.environ.get("DEMO_PORT", "8000"))
    front_url, api_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"
    print(f"Building two demo repositories in {WORK} (the seed's Use Case 1) ...")
    front = make_node("frontend", "Frontend")
    api = make_node("api-service", "API Service")
    nodes = [serve(front, port), serve(api, port + 1)]
    try:
        wait_for_port(port, nodes[0])
        wait_for_port(port + 1, nodes[1])
        print("\n# Each node declares the other and stores the key the other issued.")
        added = run(
            [
                FED,
                "remote",
                "add",
                "github.com/org/frontend",
                "--trust",
                "verified",
                "--endpoint",
                f"{front_url}/api/v1",
                "--no-discover",
            ],
            cwd=api,
        )
        added_back = run(
            [
                FED,
                "remote",
                "add",
                "github.com/org/api-service",
                "--endpoint",
                f"{api_url}/api/v1",
                "--token",
                key_from(added),
            ],
            cwd=front,
        )
        run([FED, "remote", "set-token", "github.com/org/frontend", key_from(added_back)], cwd=api, show=False)

        print("\n# Frontend: the profile page needs an API endpoint that does not exist yet.")
        run([FED, "issue", "show", "issue-100"], cwd=front)
        out = run(
            [
                FED,
                "remote",
                "create-issue",
                "github.com/org/api-service",
                "--title",
                "Add user profile endpoint",
                "--description",
                "Frontend needs GET /api/v1/users/:id",
                "--labels",
                "api,frontend-request",
                "--discovered-from",
                "issue-100",
                "--requester",
                "claude-code-agent",
            ],
            cwd=front,
        )
        request_id = out.split("Request ID: ")[1].split()[0]

        print("\n# API service: a maintainer reviews the request (or opens the approval URL above).")
        run([FED, "requests", "pending"], cwd=api)
        approved = run([FED, "request", "approve", request_id], cwd=api)
        created_id = approved.split("Created: ")[1].split()[0]

        print("\n# Frontend: the callback arrived; issue-100 is blocked by the new remote issue.")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            shown = run([FED, "issue", "show", "issue-100"], cwd=front, show=False)
            if "Status: blocked" in shown:
                break
            time.sleep(0.5)
        run([FED, "issue", "show", "issue-100"], cwd=front)

        print("\n# Frontend subscribed by itself to the issue that blocks it; api-service lists the subscription.")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            listed = run([FED, "subscriptions", "list", "--direction", "incoming"], cwd=api, show=False)
            if created_id in listed:
                break
            time.sleep(0.5)
        run([FED, "subscriptions", "list", "--direction", "incoming"], cwd=api)

        print("\n# api-service ships the OAuth token endpoint (issue-042), one of issue-100's two remote blockers.")
        run([FED, "issue", "close", "issue-042"], cwd=api, show=True)
        time.sleep(2)
        print("# frontend heard about it, but issue-100 stays blocked: the new endpoint is still open.")
        run([FED, "issue", "why-blocked", "issue-100"], cwd=front)

        print(f"\n# Later: api-service finishes the profile endpoint and closes {created_id}. Nobody runs a sync.")
        started = time.monotonic()
        run([FED, "issue", "close", created_id], cwd=api)
        command_s = time.monotonic() - started
        issues_file = front / ".sudocode" / "issues.jsonl"
        while time.monotonic() < started + 20 and '"status":"blocked"' in _line_of(issues_file, "issue-100"):
            time.sleep(0.02)
        print(
            f"(issue-100 was open in frontend's issues.jsonl {time.monotonic() - started:.2f} s after the close "
            f"command started; the command itself, a whole CLI process, took {command_s:.2f} s)"
        )
        run([FED, "issue", "show", "issue-100"], cwd=front)

        print(
            f"""
Both nodes are up (login: {DEMO_USER} / {DEMO_PASSWORD}):
  Frontend      {front_url}/issues/issue-100     {front_url}/approvals/  (our request, completed)
  API service   {api_url}/                      {api_url}/approvals/    (the decision, the audit log at /audit/)
  Subscriptions {api_url}/subscriptions/         {front_url}/subscriptions/
  Live updates  keep {front_url}/issues/issue-100 open and run `{FED} issue update {created_id} --status open` in {api}
  API docs      {api_url}/api/docs/
Try:  cd {front} && {FED} remote query github.com/org/api-service issue --status open
Press Ctrl-C to stop both nodes.""",
            flush=True,
        )
        nodes[0].wait()
    except KeyboardInterrupt:
        print("\nStopping the nodes ...")
    finally:
        for node in nodes:
            if node.poll() is None:
                node.terminate()
        for node in nodes:
            try:
                node.wait(15)
            except subprocess.TimeoutExpired:
                node.kill()


if __name__ == "__main__":
    main()
