"""`make demo`: the seed's Use Cases 1 and 2 on four real nodes, and the policy engine.

Builds var/demo/frontend and var/demo/api-service (fresh git repositories holding demo/data/*), serves each
(daphne, a Celery worker and beat), links them, and plays Use Case 1 through the CLI, printing each command with
its output: frontend asks api-service for an endpoint, a maintainer approves, frontend's issue becomes blocked by
the new remote issue and frontend subscribes to it; api-service closes it and frontend's issue unblocks itself
(a signed webhook, no sync). Then the policy engine: api-service trusts frontend, so frontend's next request is
carried out at once by a rule, but an urgent one waits in the queue (a require rule beats auto-approval). Then
Use Case 2 on var/demo/framework and var/demo/auth-plugin: the framework delegates a spec, the plugin accepts it,
files issues under it, and the framework lists them. The dashboards stay up; Ctrl-C stops them. DEMO_PORT sets
the first port (8000; four ports from it).
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
        if (DATA / name / f).exists():
            shutil.copyfile(DATA / name / f, repo / ".sudocode" / f)
        else:
            (repo / ".sudocode" / f).write_text("")
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


def make_node(name: str, display: str, org: str = "org") -> Path:
    repo = make_repo(name, f"git@github.com:{org}/{name}.git")
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


def link(asker: Path, asker_id: str, asker_url: str, answerer: Path, answerer_id: str, answerer_url: str) -> None:
    """`answerer` declares `asker` (verified) and issues it a key; `asker` declares `answerer` (verified too: an
    untrusted remote may not subscribe, and the answerer subscribes to what it is asked about) with that key."""
    added = run(
        [FED, "remote", "add", asker_id, "--trust", "verified", "--endpoint", f"{asker_url}/api/v1", "--no-discover"],
        cwd=answerer,
    )
    added_back = run(
        [FED, "remote", "add", answerer_id, "--trust", "verified", "--endpoint", f"{answerer_url}/api/v1",
         "--token", key_from(added)],
        cwd=asker,
    )  # fmt: skip
    run([FED, "remote", "set-token", asker_id, key_from(added_back)], cwd=answerer, show=False)


def wait_until(check, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not check():
        time.sleep(0.5)


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
    framework_url, plugin_url = f"http://127.0.0.1:{port + 2}", f"http://127.0.0.1:{port + 3}"
    print(f"Building four demo repositories in {WORK} (the seed's Use Cases 1 and 2) ...")
    front = make_node("frontend", "Frontend")
    api = make_node("api-service", "API Service")
    framework = make_node("framework", "Framework")
    plugin = make_node("auth-plugin", "Auth plugin", org="community")
    nodes = [serve(front, port), serve(api, port + 1), serve(framework, port + 2), serve(plugin, port + 3)]
    try:
        for offset, node in enumerate(nodes):
            wait_for_port(port + offset, node)
        print("\n# Each node declares the other and stores the key the other issued.")
        link(front, "github.com/org/frontend", front_url, api, "github.com/org/api-service", api_url)

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

        policy_engine(front, api)
        use_case_2(framework, framework_url, plugin, plugin_url)

        print(
            f"""
The nodes are up (login: {DEMO_USER} / {DEMO_PASSWORD}):
  Frontend      {front_url}/issues/issue-100     {front_url}/approvals/  (our request, completed)
  API service   {api_url}/                      {api_url}/approvals/    (the decision, the audit log at /audit/)
  Subscriptions {api_url}/subscriptions/         {front_url}/subscriptions/
  Live updates  keep {front_url}/issues/issue-100 open and run `{FED} issue update {created_id} --status open` in {api}
  Framework     {framework_url}/                 {framework_url}/approvals/  (our delegation, accepted)
  Auth plugin   {plugin_url}/                    {plugin_url}/approvals/     (the delegation, with its chain)
  API docs      {api_url}/api/docs/
Try:  cd {front} && {FED} remote query github.com/org/api-service issue --status open
      cd {api} && {FED} policy test --from github.com/org/frontend --operation create_issue --data '{{"title": "x"}}'
Press Ctrl-C to stop the nodes.""",
            flush=True,
        )
        nodes[0].wait()
    except KeyboardInterrupt:
        print("\nStopping the nodes ...")
    finally:
        stop_nodes(nodes)


def stop_nodes(nodes: list[subprocess.Popen]) -> None:
    """Ask every node to stop, then wait for each (its worker's warm shutdown), killing one that hangs."""
    for node in nodes:
        if node.poll() is None:
            node.terminate()
    for node in nodes:
        try:
            node.wait(15)
        except subprocess.TimeoutExpired:
            node.kill()


def policy_engine(front: Path, api: Path) -> None:
    print("\n# Policy: api-service now trusts frontend. The rules `init` wrote decide (sudocode-fed policy check).")
    run([FED, "remote", "trust", "github.com/org/frontend", "trusted"], cwd=api)
    run([FED, "policy", "check"], cwd=api)
    print("\n# A routine request from a trusted remote is carried out at once, by the auto-approve rule.")
    run(
        [FED, "remote", "create-issue", "github.com/org/api-service", "--title", "Add avatar URL to profile",
         "--priority", "3", "--labels", "api", "--requester", "claude-code-agent"],
        cwd=front,
    )  # fmt: skip
    print("\n# An urgent one from the same remote waits: the require_approval rule beats auto-approval.")
    run(
        [FED, "remote", "create-issue", "github.com/org/api-service", "--title", "Rotate leaked signing key",
         "--priority", "0", "--labels", "security", "--requester", "claude-code-agent"],
        cwd=front,
    )  # fmt: skip
    run([FED, "requests", "pending"], cwd=api)


def use_case_2(framework: Path, framework_url: str, plugin: Path, plugin_url: str) -> None:
    print("\n# Use Case 2: the framework delegates plugin work to the community.")
    link(framework, "github.com/org/framework", framework_url, plugin, "github.com/community/auth-plugin", plugin_url)
    spec = run([FED, "spec", "create", "Plugin system", "-d", "Plugins extend auth and storage."], cwd=framework)
    spec_id = spec.split("Created spec ")[1].split()[0]
    sent = run(
        [FED, "remote", "delegate", "github.com/community/auth-plugin", "--type", "spec",
         "--title", "Auth plugin for v2.0", "--description", "Implement new auth API...",
         "--context", '{"api_version": "2.0", "breaking_changes": false}', "--from", spec_id],
        cwd=framework,
    )  # fmt: skip
    delegation = sent.split("→ ID: ")[1].split()[0]
    print("\n# The plugin repo: a maintainer accepts (or `a2a_policies.delegate.auto_accept` would).")
    run([FED, "delegates", "pending"], cwd=plugin)
    accepted = run([FED, "delegate", "accept", delegation, "--assignee", "claude-auth-agent"], cwd=plugin)
    plugin_spec = accepted.split("→ Created: ")[1].split()[0]
    first = run([FED, "issue", "create", "Implement auth interface", "--implements", plugin_spec], cwd=plugin)
    run([FED, "issue", "create", "Add tests for auth flow", "--implements", plugin_spec], cwd=plugin)
    first_id = first.split("Created issue ")[1].split()[0]
    run([FED, "issue", "update", first_id, "--status", "in_progress"], cwd=plugin, show=False)

    print("\n# The framework: the answer came back; its spec links to the plugin's, and it tracks the progress.")
    wait_until(lambda: "completed" in run([FED, "delegates", "list"], cwd=framework, show=False))
    run([FED, "delegates", "list"], cwd=framework)
    run(
        [FED, "remote", "query", "github.com/community/auth-plugin", "issue",
         "--filters", f'{{"spec_refs": ["{plugin_spec}"]}}'],
        cwd=framework,
    )  # fmt: skip


if __name__ == "__main__":
    main()
