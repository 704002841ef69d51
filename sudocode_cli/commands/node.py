"""`init`, `serve` and `status`: setting up and running the node."""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

from sudocode_cli import runtime
from sudocode_cli.errors import CliError, UsageError
from sudocode_cli.output import note, print_json, warn

GITIGNORE_LINES = (
    "secrets.env",
    "federation.db",
    "federation.db-*",
    ".federation-*.lock",
    "celery/",
    "metrics/",
    "celerybeat-schedule*",
    "merge-conflicts.jsonl",
    "audit-archive/",  # what retention pruned from the audit log (audit.services.audit_prune adds it too)
)


def init(args: argparse.Namespace) -> int:
    from federation_site.config import default_config, load_config, write_config
    from federation_site.node import RepoLayout
    from federation_site.secrets import default_secrets_text, is_tracked_by_git, write_secrets_text
    from tracker.gitops import origin_url

    root = _git_toplevel(Path(args.repo or os.environ.get("SUDOCODE_REPO") or Path.cwd()))
    lay = RepoLayout(root)
    done: list[str] = []
    if not lay.sudocode_dir.exists():
        lay.sudocode_dir.mkdir()
        for kind in ("issue", "spec"):
            lay.jsonl_path(kind).touch()
        done.append("created .sudocode/ with empty issues.jsonl and specs.jsonl")
    else:
        done.append("kept the existing .sudocode/ data unchanged")

    if lay.config_path.exists():
        load_config(lay.config_path)  # an existing config must be valid; say so now rather than at serve
        done.append("kept .sudocode/federation.config.json")
    else:
        origin = origin_url(root)
        url = args.url or _identity(origin) or f"local/{root.name}"
        if not args.url and url.startswith("local/"):
            warn(
                f"no usable git remote 'origin': using {url!r} as this node's identity (change local_identity.url "
                "in .sudocode/federation.config.json, or pass --url)"
            )
        write_config(
            lay.config_path,
            default_config(url=url, display_name=args.display_name or root.name, description=args.description),
        )
        done.append(f"wrote .sudocode/federation.config.json (identity {url})")

    if lay.secrets_path.exists():
        done.append("kept .sudocode/secrets.env")
    else:
        write_secrets_text(
            lay.secrets_path,
            default_secrets_text(
                secret_key=secrets.token_urlsafe(50),
                api_key=secrets.token_urlsafe(32),
                webhook_secret=secrets.token_urlsafe(32),
            ),
        )
        done.append("wrote .sudocode/secrets.env (keep it out of git)")
    from federation_site.keys import ensure_node_key

    signing_key, made = ensure_node_key(lay.secrets_path, lay.config_path)
    if made:
        done.append(f"made this node's signing key (Ed25519, fingerprint {signing_key.key_id})")

    added = _ensure_gitignore(lay.gitignore_path)
    if added:
        done.append(f"added {', '.join(added)} to .sudocode/.gitignore")
    from tracker.gitops import merge_driver_register

    # git runs the driver through a shell, from wherever it was started: this interpreter, by its full path.
    done += merge_driver_register(root, f'"{sys.executable}" -m sudocode_cli.main merge-driver %O %A %B %P')
    for line in done:
        print(f"  {line}")
    if is_tracked_by_git(root, lay.secrets_path):
        _warn_secrets_tracked()
    print(f"Federation node ready in {root}. Next: `sudocode-fed serve`, or `sudocode-fed issue list`.")
    return 0


def _identity(origin: str) -> str | None:
    from federation_site.config import identity_from_git_remote

    try:
        return identity_from_git_remote(origin) if origin else None
    except ValueError:  # a local path or file:// remote names no host
        return None


def _git_toplevel(start: Path) -> Path:
    if not start.is_dir():
        raise UsageError(f"{start} is not a directory")
    result = subprocess.run(["git", "-C", str(start), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if result.returncode != 0:
        raise UsageError(f"{start.resolve()} is not inside a git repository: run `git init` there first")
    return Path(result.stdout.strip())


def _ensure_gitignore(path: Path) -> list[str]:
    from federation_site.files import ensure_lines

    return ensure_lines(path, GITIGNORE_LINES, header="sudocode federation: local state and secrets")


def _warn_secrets_tracked() -> None:
    warn(
        "!!! .sudocode/secrets.env is tracked by git: its tokens and keys are in your history. Run "
        "`git rm --cached .sudocode/secrets.env`, commit, and rotate every secret in it. !!!"
    )


def _ambiguous_references() -> list[dict]:
    from remotes.selectors import ambiguous_references
    from remotes.services import references_rebuild

    references_rebuild()  # current with the files, as why-blocked makes them
    return ambiguous_references()


def status(args: argparse.Namespace) -> int:
    lay = runtime.setup(args.repo)
    from django.conf import settings

    from federation_site import node, workers
    from federation_site.secrets import is_tracked_by_git
    from tracker.models import Entity, JsonlFile
    from tracker.sync import data_problems

    cfg = node.config()
    counts: dict[str, int] = {}
    for kind, state in Entity.objects.values_list("kind", "status"):
        key = f"{kind}s" if kind == "spec" else f"issues_{state}"
        counts[key] = counts.get(key, 0) + 1
    db = settings.DATABASES["default"]
    info = {
        "repo": str(lay.root),
        "identity": cfg.local_identity.url if cfg else None,
        "display_name": (cfg.local_identity.display_name if cfg else None) or lay.root.name,
        "federation_enabled": bool(cfg and cfg.enabled),
        "configured": cfg is not None,
        "remotes": len(cfg.remote_repos) if cfg else 0,
        "git_auto_commit": bool(cfg and cfg.git.auto_commit),
        "git_commit_remote_changes": bool(cfg and cfg.git.commit_remote_changes),
        "database": f"{db['ENGINE'].rsplit('.', 1)[-1]}:{db['NAME']}",
        "issues": sum(v for k, v in counts.items() if k.startswith("issues_")),
        "issues_by_status": {
            k.removeprefix("issues_"): v for k, v in sorted(counts.items()) if k.startswith("issues_")
        },
        "specs": counts.get("specs", 0),
        "last_import": {f.kind: f.imported_at.isoformat() if f.imported_at else None for f in JsonlFile.objects.all()},
        "secrets_tracked_by_git": is_tracked_by_git(lay.root, lay.secrets_path),
        "worker": workers.worker_state(lay),
        "data_problems": [p.short for p in data_problems()],
        "ambiguous_references": _ambiguous_references(),
        "signing_key": _signing_key(cfg),
        "plain_http_remotes": _plain_http_remotes(),
    }
    if info["secrets_tracked_by_git"]:
        _warn_secrets_tracked()
    if args.format == "json":
        print_json(info)
        return 0
    w = sys.stdout.write
    w(f"Repository:  {info['repo']}\n")
    if cfg is None:
        w("Federation:  not set up (no .sudocode/federation.config.json): run `sudocode-fed init`\n")
    else:
        w(f"Identity:    {info['identity']} ({info['display_name']})\n")
        w(f"Federation:  {'enabled' if info['federation_enabled'] else 'disabled'}, {info['remotes']} remote(s)\n")
        local = "committed" if info["git_auto_commit"] else "not committed (git.auto_commit)"
        remote = "committed" if info["git_commit_remote_changes"] else "not committed (git.commit_remote_changes)"
        w(f"Git commits: local edits {local}; changes from other repositories {remote}\n")
    w(f"Database:    {info['database']}\n")
    by_status = ", ".join(f"{v} {k}" for k, v in info["issues_by_status"].items()) or "none"
    w(f"Issues:      {info['issues']} ({by_status})\n")
    w(f"Specs:       {info['specs']}\n")
    seen = info["worker"]["last_seen_seconds"]
    if info["worker"]["alive"]:
        w(f"Worker:      alive (seen {seen:.0f} s ago)\n")
    elif seen is None:
        w("Worker:      never seen (it runs with `sudocode-fed serve`)\n")
    else:
        w(f"Worker:      not running (last seen {seen:.0f} s ago): callbacks, notifications and webhooks wait\n")
    for problem in info["data_problems"]:
        w(f"Data:        cannot read {problem}\n")
    for ambiguous in info["ambiguous_references"]:
        w(f"References:  {ambiguous['references']} unresolved: {ambiguous['message']}\n")
    if info["signing_key"]:
        w(f"Signing key: {info['signing_key']} (Ed25519; remotes pin it at `remote add`)\n")
    for plain in info["plain_http_remotes"]:
        w(f"Warning:     {plain['message']}\n")
    return 0


def key_rotate(args: argparse.Namespace) -> int:
    lay = runtime.setup(args.repo)
    from remotes.services import node_key_rotate

    done = node_key_rotate(actor=runtime.actor(lay))
    print(f"New signing key {done['key_id']} (was {done['old_key_id']}), in .sudocode/secrets.env and the config")
    for url in done["told"]:
        print(f"  {url}: pinned the new key")
    for failed in done["failed"]:
        warn(
            f"{failed['url']} was not told ({failed['error']}): on that node, pin it by hand with "
            f"`sudocode-fed remote key <this node> --pin <the public key in local_identity.public_key>`"
        )
    return 1 if done["failed"] else 0


def _signing_key(cfg) -> str | None:
    from federation_site.keys import fingerprint

    key = cfg.local_identity.public_key if cfg and cfg.local_identity else None
    return fingerprint(key) if key else None


def _plain_http_remotes() -> list[dict]:
    from remotes.selectors import plain_http_remotes

    return plain_http_remotes()


def serve(args: argparse.Namespace) -> int:
    from federation_site import logs, metrics
    from federation_site.node import RepoLayout

    # Before Django reads its settings (LOGGING); the worker and beat inherit them.
    os.environ[logs.FORMAT_ENV] = args.log_format or logs.log_format() or "json"
    if args.debug_a2a:
        os.environ[logs.DEBUG_A2A_ENV] = "1"

    # Before anything imports prometheus_client: daphne, the worker and beat each count into their own files
    # there, which /metrics adds up; emptied, so a scrape never adds the processes of an earlier run.
    metrics.multiprocess_prepare(RepoLayout(runtime.repo_root(args.repo)).metrics_dir)
    tls = _tls_files(args)
    if tls:
        os.environ[TLS_ENV] = "1"  # read by the settings: HSTS and secure cookies (issue 17)
    lay = runtime.setup(args.repo, web=True)
    from django.conf import settings

    from federation_site import identity, node
    from federation_site.secrets import is_tracked_by_git

    if settings.SECRET_KEY_IS_EPHEMERAL:
        raise CliError(
            "no DJANGO_SECRET_KEY in .sudocode/secrets.env (or the environment): run `sudocode-fed init` to create one"
        )
    node.config()  # a broken config stops the node here, with the file, key and reason
    from federation_site.keys import ensure_node_key

    # A node made before keys existed gets one on its first start (issue 17): it signs what it sends.
    signing_key, made = ensure_node_key(lay.secrets_path, lay.config_path)
    if made:
        note(f"Made this node's signing key (Ed25519, fingerprint {signing_key.key_id})")
    if is_tracked_by_git(lay.root, lay.secrets_path):
        _warn_secrets_tracked()
    from daphne.cli import CommandLineInterface

    host = f"[{args.host}]" if ":" in args.host else args.host
    base = f"{'https' if tls else 'http'}://{host}:{args.port}"
    note(f"Serving {lay.root} at {base}/  (admin: {base}/admin/, API docs: {base}/api/docs/)")
    cfg = node.config()
    if cfg is not None and not cfg.endpoints.rest and args.host not in ("0.0.0.0", "::"):
        # Remotes call us back (webhooks of our subscriptions) at this address unless the config declares one.
        os.environ[identity.SERVED_URL_ENV] = f"{base}/api/v1"
    elif cfg is not None and not cfg.endpoints.rest:
        warn(
            "endpoints.rest is not set in federation.config.json: remotes cannot deliver our subscriptions' events "
            "until it names the address they reach this node at (e.g. https://node.example.com/api/v1)"
        )
    from subscriptions.outgoing import subscriptions_resume

    resumed = subscriptions_resume()
    if resumed:
        note(f"Subscribing again to {resumed} remote subscription(s), so what changed meanwhile arrives now")
    sys.stderr.flush()
    from federation_site import workers

    if tls:
        # Twisted's TLS endpoint: TLS 1.2 at least (its default minimum), and HTTP/2 offered by ALPN when h2 is
        # installed (daphne's factory lists b"h2" then); WebSocket clients negotiate HTTP/1.1 and upgrade.
        certfile, keyfile = tls
        endpoint = ":".join(
            [f"ssl:port={args.port}", f"interface={_escape(args.host)}"]
            + [f"certKey={_escape(certfile)}", f"privateKey={_escape(keyfile)}"]
        )
        daphne_args = ["-e", endpoint]
    else:
        daphne_args = ["-b", args.host, "-p", str(args.port)]
    if args.a2a_conformance:
        settings.A2A_CONFORMANCE = True
        os.environ["FEDERATION_A2A_CONFORMANCE"] = "1"  # for the web processes of --workers too
        warn(
            "A2A conformance mode: A2A messages that carry no federation message run the conformance kit's "
            "scenarios (agents/a2a_conformance.py). For conformance testing only."
        )
    if args.access_log:
        daphne_args += ["--access-log", args.access_log]
    # The worker and beat run sync, callback and notification jobs; they live and die with the web process, which
    # starts either again when it exits (and the health check says while it is not alive).
    os.environ[workers.WORKER_ENV] = "none" if args.no_worker else "supervised"
    from audit.services import BATCH_READS_ENV

    os.environ[BATCH_READS_ENV] = "1"  # web processes audit reads in batches (audit.services)
    processes = args.workers or os.cpu_count() or 1
    if tls and processes > 1:
        # The web processes of --workers share a plain listening socket (daphne --fd); TLS is Twisted's own
        # endpoint, which listens by itself: one web process serves HTTPS.
        if args.workers:
            warn(f"--certfile: one web process serves HTTPS (--workers {args.workers} applies to plain HTTP only)")
        processes = 1
    if processes > 1:
        return _serve_processes(args, lay.root, processes, daphne_args[4:])
    supervisor = None if args.no_worker else workers.Supervisor(lay.root).start()
    try:
        CommandLineInterface().run([*daphne_args, "federation_site.asgi:application"])
    finally:
        if supervisor is not None:
            supervisor.stop()
    return 0


def _serve_processes(args: argparse.Namespace, root, processes: int, daphne_args: list[str]) -> int:
    """`serve --workers N`: N web processes listening on the port together (sudocode_cli.webprocess), supervised
    with the worker and beat, until SIGTERM or SIGINT (which each child gets as well, and ends on cleanly)."""
    import signal
    import threading

    from federation_site import workers

    try:  # the port is ours (bound, not listening: no connection waits here), or say so now
        reserved = _bound(args.host, args.port)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    note(f"{processes} web processes on port {args.port} (--workers)")
    command = [sys.executable, "-m", "sudocode_cli.webprocess", args.host, str(args.port), *daphne_args]
    supervisor = workers.Supervisor(root, worker=not args.no_worker, web=command, web_processes=processes).start()
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    try:
        done.wait()
    finally:
        supervisor.stop()
        reserved.close()
    return 0


def _bound(host: str, port: int):
    """A socket bound to the port with SO_REUSEPORT and never listening: it keeps another program from taking
    the port between two web processes' lives, and receives no connection."""
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


TLS_ENV = "SUDOCODE_FED_TLS"


def _tls_files(args: argparse.Namespace) -> tuple[str, str] | None:
    """(certfile, keyfile) as absolute paths for `serve --certfile --keyfile`, None without them; a usage
    error when only one is given or a file cannot be read."""
    certfile, keyfile = getattr(args, "certfile", None), getattr(args, "keyfile", None)
    if not certfile and not keyfile:
        return None
    if not (certfile and keyfile):
        raise UsageError("give both --certfile and --keyfile (the certificate chain and its private key, PEM)")
    paths = []
    for flag, name in (("--certfile", certfile), ("--keyfile", keyfile)):
        path = Path(name).expanduser().absolute()
        if not path.is_file() or not os.access(path, os.R_OK):
            raise UsageError(f"{flag}: {name} is not a readable file")
        paths.append(str(path))
    return paths[0], paths[1]


def _escape(value: str) -> str:
    """A value inside a Twisted endpoint string, where ':' and '=' separate the parts."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def staff_add(args: argparse.Namespace) -> int:
    """A staff user for the dashboard and the admin (a superuser with --superuser)."""
    runtime.setup(args.repo, web=True)  # the CLI profile has no django.contrib.auth
    import getpass

    from django.contrib.auth import get_user_model
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"Password for {args.username}: ")
        if password != getpass.getpass("Again: "):
            raise UsageError("the two passwords differ")
    user_model = get_user_model()
    user = user_model.objects.filter(username=args.username).first() or user_model(username=args.username)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise UsageError(f"password: {' '.join(exc.messages)}") from None
    user.is_staff = True
    user.is_superuser = user.is_superuser or args.superuser
    user.email = args.email or user.email
    user.set_password(password)
    user.save()
    print(f"{args.username} can log in at /admin/login/ and decide requests at /approvals/.")
    return 0


def merge_driver(args: argparse.Namespace) -> int:
    """git's merge driver for .sudocode/*.jsonl: merge by record (tracker.merge) into %A; exit 0 when merged.
    What needed a human's decision is printed and appended to .sudocode/merge-conflicts.jsonl. A version that
    cannot be read is left to git's line merge (conflict markers, exit 1), as without the driver."""
    import json
    from datetime import UTC, datetime

    from tracker import gitops, jsonl
    from tracker.doctor import MERGE_DECISIONS
    from tracker.merge import merge_files

    ours, base, theirs = Path(args.ours), Path(args.base), Path(args.theirs)
    name = Path(args.path).name
    kind = {"issues.jsonl": "issue", "specs.jsonl": "spec"}.get(name)
    if kind is None:
        return 0 if gitops.merge_file_with_markers(ours, base, theirs) else 1
    try:
        result = merge_files(base, ours, theirs, kind=kind)
    except jsonl.JsonlFormatError as exc:
        warn(f"{args.path}: merging line by line instead ({exc.reason})")
        return 0 if gitops.merge_file_with_markers(ours, base, theirs) else 1
    ours.write_bytes(result.content)
    if result.conflicts:
        at = datetime.now(UTC).isoformat(timespec="seconds")
        log = Path(args.path).parent / MERGE_DECISIONS
        with log.open("a", encoding="utf-8") as fh:
            for conflict in result.conflicts:
                fh.write(json.dumps({"file": args.path, "at": at, **conflict.as_dict()}) + "\n")
        for conflict in result.conflicts:
            warn(f"{args.path}: {conflict.id}: {conflict.reason}")
        note(f"({len(result.conflicts)} to check by hand, listed in {log})")
    return 0


def doctor(args: argparse.Namespace) -> int:
    """Every problem in the repository's data and config (tracker.doctor), read from the files themselves, so
    it works when the node cannot; `--fix` repairs what is safe (duplicated ids) as one git commit. Exit 0 when
    nothing is wrong (any more), 1 otherwise."""

    from federation_site.config import ConfigError, load_config
    from federation_site.files import write_atomic
    from federation_site.node import REPO_ENV, RepoLayout, RepoNotFound, find_repo
    from federation_site.secrets import is_tracked_by_git
    from tracker import doctor as checks
    from tracker import gitops
    from tracker.locks import file_lock

    try:
        lay = RepoLayout(find_repo(explicit=args.repo or os.environ.get(REPO_ENV) or None))
    except RepoNotFound as exc:
        raise UsageError(str(exc)) from None
    problems: list[checks.Problem] = []
    remotes: list[str] = []
    own = None
    if lay.config_path.exists():
        try:
            cfg = load_config(lay.config_path)
            remotes = [str(r.url) for r in cfg.remote_repos]
            own = cfg.local_identity.url if cfg.local_identity else None
        except ConfigError as exc:
            problems.append(checks.Problem("config", "federation.config.json", (), str(exc)))
    if is_tracked_by_git(lay.root, lay.secrets_path):
        problems.append(
            checks.Problem(
                "secrets_tracked",
                "secrets.env",
                (),
                "git tracks it, so its keys are in your history: `git rm --cached .sudocode/secrets.env`, commit, "
                "and rotate every secret in it",
            )
        )
    scans = {kind: checks.scan_file(lay.jsonl_path(kind), kind) for kind in ("issue", "spec")}
    known = checks.known_repo_paths(remotes, own)
    fixed: list[str] = []
    if args.fix:
        for kind, scan in scans.items():
            other = {r["id"] for k, s in scans.items() if k != kind for _n, r in s.records}
            with file_lock(lay.lock_path(kind)):  # a serving node's writes queue behind this one
                content, done = checks.doctor_fix(checks.scan_file(scan.path, kind), other_ids=other)
                if content is not None:
                    write_atomic(scan.path, content)
                    fixed += done
        if fixed:
            scans = {kind: checks.scan_file(lay.jsonl_path(kind), kind) for kind in ("issue", "spec")}
            message = "sudocode-fed doctor --fix: " + "; ".join(fixed)
            if gitops.is_git_repo(lay.root):
                try:
                    gitops.commit_files(lay.root, [s.path for s in scans.values() if s.path.exists()], message)
                except gitops.GitError as exc:
                    warn(f"repaired, but not committed: {exc}")
    problems += checks.diagnose(scans, known_repos=known, remote_identities=remotes)
    problems += checks.merge_decisions(lay.sudocode_dir)
    if args.format == "json":
        print_json({"fixed": fixed, "problems": [p.as_dict() for p in problems]})
    else:
        for line in fixed:
            print(f"fixed: {line}")
        for problem in problems:
            print(problem)
        if not problems:
            print("No problems found.")
        elif any(p.fixable for p in problems) and not args.fix:
            note("Run `sudocode-fed doctor --fix` to repair what is marked so (one git commit).")
    return 1 if problems else 0
