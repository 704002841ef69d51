"""The `sudocode-fed` CLI, run as a real process against temp git repositories."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sudocode_cli.main import build_parser, main
from tests.conftest import cli_env, copy_corpus, git, make_git_repo, run_cli

pytestmark = pytest.mark.slow


def fed(repo: Path, *args: str):
    return run_cli("--repo", str(repo), *args)


@pytest.fixture
def inited(git_repo: Path) -> Path:
    result = fed(git_repo, "init")
    assert result.code == 0, result.err
    return git_repo


def _all_parsers(parser: argparse.ArgumentParser, path=()):
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, (*path, name))


def test_help_works_on_every_command_and_subcommand(capsys):
    paths = list(_all_parsers(build_parser()))
    assert ("issue", "create") in paths and ("spec", "list") in paths and ("serve",) in paths
    for path in paths:
        with pytest.raises(SystemExit) as exit_:
            main([*path, "--help"])
        assert exit_.value.code == 0
        assert "usage: sudocode-fed" in capsys.readouterr().out


def test_a_run_builds_only_its_commands_parser_and_still_lists_every_command(capsys):
    # main() builds the parser of the command it runs only (issue 16): the rest must look the same.
    assert build_parser("issue").format_help() == build_parser().format_help()
    with pytest.raises(SystemExit) as exit_:
        main(["--repo", "issue", "nope"])  # "issue" is the value of --repo here; "nope" is no command
    assert exit_.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--rep=x", "issue", "list", "--bogus"])
    assert exit_.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


def _end_process_run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_the_process_ends_with_the_code_after_its_output_and_atexit_hooks():
    # A command ends with os._exit (issue 16): nothing written or registered may be lost on the way.
    ended = _end_process_run(
        "import atexit, sys\n"
        "atexit.register(lambda: print('hook ran'))\n"
        "from sudocode_cli.main import _end_process\n"
        "print('output', end=' '); sys.stderr.write('said')\n"
        "_end_process(3)\n"
        "print('never')"
    )
    assert (ended.returncode, ended.stdout, ended.stderr) == (3, "output hook ran\n", "said")


def test_the_process_waits_for_a_thread_still_working():
    ended = _end_process_run(
        "import threading, time\n"
        "from sudocode_cli.main import _end_process\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done', flush=True))).start()\n"
        "_end_process(0)"
    )
    assert (ended.returncode, ended.stdout) == (0, "thread done\n")


def test_init_sets_up_a_fresh_git_repository(git_repo):
    result = fed(git_repo, "init")
    assert result.code == 0, result.err
    sd = git_repo / ".sudocode"
    config = json.loads((sd / "federation.config.json").read_text())
    assert config["local_identity"]["url"] == "github.com/acme/frontend"
    assert "DJANGO_SECRET_KEY=" in (sd / "secrets.env").read_text()
    assert (sd / "secrets.env").stat().st_mode & 0o777 == 0o600
    ignored = (sd / ".gitignore").read_text().splitlines()
    assert {"secrets.env", "federation.db", "federation.db-*"} <= set(ignored)
    git(git_repo, "add", "-A")
    tracked = git(git_repo, "ls-files").split()
    assert ".sudocode/secrets.env" not in tracked and ".sudocode/federation.db" not in tracked
    assert ".sudocode/federation.config.json" in tracked


def test_init_in_a_sudocode_repository_changes_none_of_its_data(git_repo):
    copy_corpus("sudocode-ai__sudocode", git_repo)
    (git_repo / ".sudocode" / ".gitignore").write_text("cache.db")
    before = {p.name: p.read_bytes() for p in (git_repo / ".sudocode").iterdir()}

    assert fed(git_repo, "init").code == 0
    assert fed(git_repo, "issue", "list").code == 0

    after = {p.name: p.read_bytes() for p in (git_repo / ".sudocode").iterdir()}
    assert after["issues.jsonl"] == before["issues.jsonl"]
    assert after["specs.jsonl"] == before["specs.jsonl"]
    assert after[".gitignore"].startswith(b"cache.db\n")
    assert fed(git_repo, "init").code == 0  # again: keeps everything
    assert (git_repo / ".sudocode" / "issues.jsonl").read_bytes() == before["issues.jsonl"]


def test_init_outside_git_says_what_to_do(tmp_path):
    result = run_cli("init", cwd=tmp_path)
    assert result.code == 2
    assert "git init" in result.err


def test_commands_outside_a_repository_say_where_they_looked(tmp_path):
    result = run_cli("issue", "list", cwd=tmp_path)
    assert result.code == 2
    assert "sudocode-fed init" in result.err and "--repo" in result.err


def test_issue_lifecycle_through_the_cli(inited):
    created = fed(
        inited,
        "issue",
        "create",
        "Add user profile page",
        "--id",
        "issue-100",
        "-p",
        "1",
        "--tags",
        "ui,frontend",
        "-d",
        "Needs [[org/api-service#issue-084]].",
    )
    assert created.code == 0, created.err
    assert "Created issue issue-100" in created.out
    api = fed(inited, "issue", "create", "Profile endpoint", "--blocks", "issue-100", "--format", "json")
    api_id = json.loads(api.out)["id"]

    shown = fed(inited, "issue", "show", "issue-100")
    assert shown.code == 0
    assert "Issue: issue-100 - Add user profile page" in shown.out
    assert f'{api_id} (open) - "Profile endpoint"' in shown.out
    assert (
        "references org/api-service#issue-084 (unknown remote org/api-service: `sudocode-fed remote add`)" in shown.out
    )

    listed = fed(inited, "issue", "list", "--tags", "ui")
    assert "issue-100" in listed.out and api_id not in listed.out

    assert fed(inited, "issue", "update", "issue-100", "--status", "blocked", "--assignee", "ana").code == 0
    assert fed(inited, "issue", "close", api_id).code == 0
    detail = json.loads(fed(inited, "issue", "show", "issue-100", "--format", "json").out)
    assert detail["status"] == "blocked" and detail["record"]["assignee"] == "ana"
    assert detail["blocked_by"] == [
        {
            "type": "blocks",
            "id": api_id,
            "kind": "issue",
            "title": "Profile endpoint",
            "status": "closed",
            "exists": True,
        }
    ]
    assert detail["references"][0]["ref"] == "org/api-service#issue-084"
    closed = json.loads(fed(inited, "issue", "list", "--status", "closed", "--format", "json").out)
    assert [r["id"] for r in closed] == [api_id]


def test_specs_through_the_cli(inited):
    created = fed(inited, "spec", "create", "Plugin system", "--tags", "architecture", "--format", "json")
    assert created.code == 0, created.err
    spec_id = json.loads(created.out)["id"]
    assert spec_id.startswith("s-")
    assert spec_id in fed(inited, "spec", "list").out
    assert "Spec: " + spec_id in fed(inited, "spec", "show", spec_id).out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("issue", "create", "x", "--priority", "9"), "priority"),
        (("issue", "create", "x", "--status", "done"), "status"),
        (("issue", "create"), "title"),
        (("issue", "list", "--status", "opn"), "opn"),
        (("issue", "create", "x", "--blocks", "i-none"), "relationships: no issue or spec 'i-none'"),
        (("issue", "create", "x", "--id", "bad id!"), "id:"),
        (("issue",), "usage"),
        (("serve", "--port", "99999"), "'99999' is not a TCP port"),
    ],
)
def test_usage_errors_exit_2_and_say_what_is_wrong(inited, args, needle):
    result = fed(inited, *args)
    assert result.code == 2
    assert needle in result.err
    assert result.out == ""


def test_an_unknown_issue_is_a_failure_with_exit_1(inited):
    result = fed(inited, "issue", "show", "i-nope")
    assert result.code == 1
    assert result.err.splitlines()[-1] == "error: no issue 'i-nope' in this repository"


def test_a_bad_config_names_the_file_the_key_and_the_problem(inited):
    path = inited / ".sudocode" / "federation.config.json"
    config = json.loads(path.read_text())
    config["remote_repos"] = [
        {"url": "github.com/org/api-gateway", "trust_level": "trusted"},
        {"url": "github.com/org/billing", "trust_level": "trustd"},
    ]
    path.write_text(json.dumps(config))
    result = fed(inited, "status")
    assert result.code == 1
    assert (
        "error: federation.config.json: remote_repos[1].trust_level: 'trustd' is not one of trusted, verified, "
        "untrusted\n(a running node keeps its last good config until the file is fixed"
    ) in result.err


def test_a_config_broken_after_good_runs_still_stops_the_next_command(inited):
    # Runs after the first skip validating an unchanged config (issue 16): an edit must still be checked.
    assert fed(inited, "issue", "list").code == 0
    assert fed(inited, "issue", "list").code == 0
    path = inited / ".sudocode" / "federation.config.json"
    config = json.loads(path.read_text())
    config["remote_repos"] = [{"url": "github.com/org/billing", "trust_level": "trustd"}]
    path.write_text(json.dumps(config))
    for args in (("issue", "list"), ("issue", "show", "i-none"), ("issue", "create", "Never written")):
        result = fed(inited, *args)
        assert result.code == 1, args
        assert "error: federation.config.json: remote_repos[0].trust_level: 'trustd' is not one of" in result.err
    assert (
        not (inited / ".sudocode" / "issues.jsonl").exists()
        or "Never written" not in (inited / ".sudocode" / "issues.jsonl").read_text()
    )
    config["remote_repos"][0]["trust_level"] = "trusted"
    path.write_text(json.dumps(config))
    assert fed(inited, "issue", "list").code == 0


def test_the_jsonl_edited_behind_the_clis_back_is_listed_by_the_next_command(inited):
    created = json.loads(fed(inited, "issue", "create", "Before the pull", "--format", "json").out)
    assert [r["title"] for r in json.loads(fed(inited, "issue", "list", "--format", "json").out)] == ["Before the pull"]
    # What `git pull` or sudocode's own CLI does: the file changes, the database does not know yet.
    path = inited / ".sudocode" / "issues.jsonl"
    path.write_text(path.read_text().replace("Before the pull", "After the pull"))
    listed = json.loads(fed(inited, "issue", "list", "--format", "json").out)
    assert [(r["id"], r["title"]) for r in listed] == [(created["id"], "After the pull")]
    assert "After the pull" in fed(inited, "issue", "show", created["id"]).out


def test_auto_commit_commits_the_jsonl_with_who_and_what(inited):
    path = inited / ".sudocode" / "federation.config.json"
    config = json.loads(path.read_text())
    config["git"]["auto_commit"] = True
    path.write_text(json.dumps(config))
    created = json.loads(fed(inited, "issue", "create", "Committed issue", "--format", "json").out)

    log = git(inited, "log", "-1", "--format=%s%n%b")
    assert f"create issue {created['id']}: Committed issue" in log
    assert "By: Test User" in log
    assert git(inited, "show", "--name-only", "--format=", "HEAD").split() == [".sudocode/issues.jsonl"]


def test_git_keys_edited_between_creates_take_effect_and_a_broken_edit_stops_the_create(inited):
    # A create reads git.auto_commit from a config the database records as good without validating it again
    # (issue 16): each edit must still be seen, and a broken one still stop the write with its message.
    path = inited / ".sudocode" / "federation.config.json"
    config = json.loads(path.read_text())
    git(inited, "commit", "-q", "--allow-empty", "-m", "start")

    def create(title: str):
        result = fed(inited, "issue", "create", title)
        assert result.code == 0, result.err
        return git(inited, "log", "--format=%s", "--", ".sudocode/issues.jsonl")

    assert create("Not committed") == ""
    config["git"]["auto_commit"] = True
    path.write_text(json.dumps(config))
    assert "Committed once" in create("Committed once")  # the edit, validated
    assert "Committed twice" in create("Committed twice")  # the same file, now recorded as good
    config["git"]["auto_commit"] = False
    path.write_text(json.dumps(config))
    assert "Left out" not in create("Left out")
    assert "Left out again" not in create("Left out again")
    config["git"]["auto_commit"] = "yes"
    path.write_text(json.dumps(config))
    result = fed(inited, "issue", "create", "Never written")
    assert result.code == 1
    assert "error: federation.config.json: git.auto_commit:" in result.err
    assert "Never written" not in (inited / ".sudocode" / "issues.jsonl").read_text()


def test_a_create_with_an_unchanged_config_loads_no_validation_and_no_network_stack(inited):
    # What a create skips (issue 16): pydantic and the config models (~140 ms), the HTTP, crypto, Celery and
    # wire-format modules no local write uses, logging.config for the plain CLI logging and the migrate command.
    assert fed(inited, "issue", "create", "First").code == 0  # the database records the config as good
    script = (
        "import json, sys\n"
        "from sudocode_cli.main import main\n"
        f"code = main(['--repo', {str(inited)!r}, 'issue', 'create', 'Second'])\n"
        "heavy = ('pydantic', 'federation_site.config', 'cryptography', 'celery', 'kombu', 'requests', 'httpx',"
        " 'protocol.messages', 'logging.config', 'django.core.management')\n"
        "print(json.dumps([code, sorted(m for m in sys.modules if m in heavy)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == [0, []]
    assert "Second" in (inited / ".sudocode" / "issues.jsonl").read_text()


def test_the_garbage_collector_runs_again_once_a_command_has_started(inited):
    # runtime.setup() pauses it while Django and our apps load and freezes what they made (issue 16): what the
    # command makes afterwards (a long `serve`, `mcp`) must still be collected.
    script = (
        "import gc, json, sys\n"
        "from sudocode_cli.main import main\n"
        f"code = main(['--repo', {str(inited)!r}, 'issue', 'list'])\n"
        "import weakref\n"
        "class Cycle:\n"
        "    pass\n"
        "c = Cycle(); c.me = c; ref = weakref.ref(c); del c\n"
        "made = [[] for _ in range(20000)]  # enough allocations for the collector's automatic passes\n"
        "print(json.dumps([code, gc.isenabled(), gc.get_freeze_count() > 1000, ref() is None]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == [0, True, True, True]


def test_status_warns_when_git_tracks_the_secrets(inited):
    git(inited, "add", "-f", ".sudocode/secrets.env")
    result = fed(inited, "status", "--format", "json")
    assert result.code == 0
    assert json.loads(result.out)["secrets_tracked_by_git"] is True
    assert "secrets.env is tracked by git" in result.err


def test_list_reads_a_real_data_set(tmp_path):
    repo = make_git_repo(tmp_path / "sudocode")
    copy_corpus("sudocode-ai__sudocode", repo)
    listed = run_cli("--repo", str(repo), "issue", "list", "--all", "--format", "json")
    assert listed.code == 0, listed.err
    assert len(json.loads(listed.out)) == 676
    shown = run_cli("--repo", str(repo), "issue", "show", "ISSUE-001", "--format", "json")
    assert json.loads(shown.out)["record"]["id"] == "ISSUE-001"


def test_staff_add_makes_a_login_for_the_dashboard(inited):
    weak = run_cli("--repo", str(inited), "staff", "add", "bob", "--password-stdin", stdin="short\n")
    assert weak.code == 2 and "password" in weak.err
    added = run_cli(
        "--repo", str(inited), "staff", "add", "alice", "--superuser", "--password-stdin", stdin="a-long-password-123\n"
    )
    assert added.code == 0, added.err
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.contrib.auth import authenticate; "
            "u = authenticate(username='alice', password='a-long-password-123'); print(u.is_staff, u.is_superuser)",
        ],
        env=cli_env(SUDOCODE_REPO=str(inited), DJANGO_SETTINGS_MODULE="federation_site.settings"),
        capture_output=True,
        text=True,
    )
    assert check.stdout.strip() == "True True", check.stderr
