"""`make demo-uc3`: the seed's Use Case 3 (a platform team coordinating many services) on five real nodes.

Builds var/demo-uc3/{platform, api-gateway, auth-service, billing-service, database} (fresh git repositories),
serves each (daphne, a Celery worker and beat) and plays the use case through the CLI, printing each command
with its output: the gateway keeps the org's directory; the platform discovers the services in it and adds them;
each service trusts the platform; the platform files the migration issue in every service (auto-approved by
their policy); the services make progress, billing waits on a database issue; the platform tracks progress with
`remote query-all`, draws `deps graph --cross-repo`, asks `issue why-blocked` about billing's issue, and searches
every repository. The dashboards stay up (the graph at /graph/); Ctrl-C stops them. DEMO_PORT sets the first
port (8010; five ports from it).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run_demo  # noqa: E402
from run_demo import (  # noqa: E402
    DEMO_PASSWORD,
    DEMO_USER,
    FED,
    key_from,
    run,
    serve,
    stop_nodes,
    wait_for_port,
    wait_until,
)

run_demo.WORK = run_demo.ROOT / "var" / "demo-uc3"
SERVICES = ["api-gateway", "auth-service", "billing-service", "database"]


def configure(repo: Path, change) -> None:
    path = repo / ".sudocode" / "federation.config.json"
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config, indent=2) + "\n")


def main() -> None:
    port = int(os.environ.get("DEMO_PORT", "8010"))
    names = ["platform", *SERVICES]
    urls = {name: f"http://127.0.0.1:{port + n}" for n, name in enumerate(names)}
    ident = {name: f"github.com/org/{name}" for name in names}
    print(f"Building five demo repositories in {run_demo.WORK} (the seed's Use Case 3) ...")
    repos = {name: run_demo.make_node(name, name) for name in names}
    for name in names:  # each node says where it is reached (its directory entry and callbacks use it)
        configure(repos[name], lambda c, name=name: c.update(endpoints={"rest": f"{urls[name]}/api/v1"}))
    gateway = repos["api-gateway"]
    print("\n# The gateway keeps the org's directory: itself and the services that agreed to be listed.")
    for name in SERVICES[1:]:
        run([FED, "remote", "add", ident[name], "--endpoint", f"{urls[name]}/api/v1", "--no-discover"],
            cwd=gateway, show=False)  # fmt: skip
    configure(gateway, lambda c: (c.update(discovery={"listed": True, "list_to": "untrusted"}),
                                  [r.update(listed=True) for r in c["remote_repos"]]))  # fmt: skip
    configure(repos["platform"], lambda c: c.update(discovery={"sources": [f"{urls['api-gateway']}/api/v1"]}))
    nodes = [serve(repos[name], port + n) for n, name in enumerate(names)]
    try:
        for n, node in enumerate(nodes):
            wait_for_port(port + n, node)
        platform = repos["platform"]
        print("\n# Platform: every service of the org, from the gateway's directory.")
        run([FED, "remote", "discover", "github.com/org/*", "--auto-add", "--trust", "verified"], cwd=platform)

        print("\n# Each service's maintainers trust the platform and give it a key (the platform stores it).")
        for name in SERVICES:
            added = run([FED, "remote", "add", ident["platform"], "--trust", "trusted", "--endpoint",
                         f"{urls['platform']}/api/v1", "--no-discover"], cwd=repos[name], show=False)  # fmt: skip
            run([FED, "remote", "set-token", ident[name], key_from(added)], cwd=platform, show=False)
        run([FED, "remote", "list"], cwd=platform)

        print("\n# Create the migration issue in every service (their policy auto-approves a trusted platform).")
        created = {}
        for url in run([FED, "remote", "list", "--format", "url"], cwd=platform, show=False).split():
            if url == ident["api-gateway"]:  # the first one in full; the others alike
                run([FED, "remote", "create-issue", url, "--title", "Migrate to platform v2 API", "--labels",
                     "platform-migration,q4", "--priority", "2", "--auto-approve"], cwd=platform)  # fmt: skip
                out = run([FED, "requests", "list", "--direction", "outgoing", "--format", "json"], cwd=platform,
                          show=False)  # fmt: skip
                created[url] = json.loads(out)[0]
                continue
            out = run([FED, "remote", "create-issue", url, "--title", "Migrate to platform v2 API", "--labels",
                       "platform-migration,q4", "--priority", "2", "--auto-approve", "--format", "json"],
                      cwd=platform, show=False)  # fmt: skip
            created[url] = json.loads(out)
        for request in created.values():
            wait_until(lambda r=request: json.loads(run([FED, "request", "show", r["request_id"], "--format",
                       "json"], cwd=platform, show=False))["status"] == "completed")  # fmt: skip
        done = {
            url: json.loads(
                run([FED, "request", "show", r["request_id"], "--format", "json"], cwd=platform, show=False)
            )["result"]["created"]["id"]  # fmt: skip
            for url, r in created.items()
        }
        print(f"→ Created {len(done)} issues across services: " + ", ".join(f"{u.rsplit('/')[-1]}#{i}"
                                                                             for u, i in done.items()))  # fmt: skip
        print("\n# Platform: the migration spec, blocked by the issue in each service.")
        tracked = ", ".join(f"[[org/{u.rsplit('/')[-1]}#{i}]]" for u, i in done.items())
        run([FED, "spec", "create", "Q4 Migration to v2 API", "-d", f"Blocked by: {tracked}"], cwd=platform)

        print("\n# The services work: auth is done, the gateway is on it, billing waits on the database.")
        run([FED, "issue", "close", done[ident["auth-service"]]], cwd=repos["auth-service"])
        run([FED, "issue", "update", done[ident["api-gateway"]], "--status", "in_progress"], cwd=gateway)
        billing, database = repos["billing-service"], repos["database"]
        added = run([FED, "remote", "add", ident["billing-service"], "--trust", "verified", "--endpoint",
                     f"{urls['billing-service']}/api/v1", "--no-discover"], cwd=database, show=False)  # fmt: skip
        run([FED, "remote", "add", ident["database"], "--endpoint", f"{urls['database']}/api/v1", "--token",
             key_from(added)], cwd=billing, show=False)  # fmt: skip
        asked = json.loads(run([FED, "remote", "create-issue", ident["database"], "--title", "Add billing schema v2",
                                "--discovered-from", done[ident["billing-service"]], "--format", "json"],
                               cwd=billing, show=False))  # fmt: skip
        run([FED, "request", "approve", asked["request_id"], "--estimated-completion", "2026-12-10"], cwd=database)
        wait_until(lambda: "blocked" in run([FED, "issue", "show", done[ident["billing-service"]]], cwd=billing,
                                            show=False))  # fmt: skip

        print("\n# Platform: track progress across every service at once.")
        run([FED, "remote", "query-all", "issue", "--filters", '{"labels": ["platform-migration"]}'], cwd=platform)
        print("\n# The blocking graph across repositories (the seed's legend: ✓ closed, → in progress, ✗ blocked).")
        run([FED, "deps", "graph", "--cross-repo", "--format", "ascii"], cwd=platform)
        print("\n# Why is billing's migration blocked? Billing's node explains it.")
        run([FED, "issue", "why-blocked", f"org/billing-service#{done[ident['billing-service']]}"], cwd=platform)
        print("\n# Search every repository.")
        run([FED, "search", "billing schema", "--all-repos"], cwd=platform)
        print(
            f"""
The nodes are up (login: {DEMO_USER} / {DEMO_PASSWORD}):
  Platform     {urls["platform"]}/         the graph: {urls["platform"]}/graph/
  API gateway  {urls["api-gateway"]}/      (the directory: {urls["api-gateway"]}/api/v1/federation/directory)
  Auth         {urls["auth-service"]}/
  Billing      {urls["billing-service"]}/
  Database     {urls["database"]}/approvals/
Try:  cd {platform} && {FED} remote query-all issue --labels platform-migration --format json
Press Ctrl-C to stop the nodes.""",
            flush=True,
        )
        nodes[0].wait()
    except KeyboardInterrupt:
        print("\nStopping the nodes ...")
    finally:
        stop_nodes(nodes)


if __name__ == "__main__":
    main()
