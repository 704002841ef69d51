import os
import shutil
import stat
import subprocess

import pytest

from federation_site.secrets import (
    SECRETS_FILENAME,
    default_secrets_text,
    get_secret,
    is_tracked_by_git,
    read_secrets,
    set_secret,
    token_env_name,
)


@pytest.fixture
def secrets_path(tmp_path):
    return tmp_path / ".sudocode" / SECRETS_FILENAME


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_it_parses_the_seed_example(secrets_path):
    write(
        secrets_path,
        "# Gitignored - store sensitive credentials\n"
        "\n"
        "# Outgoing auth (for calling remote repos)\n"
        "REMOTE_REPO_TOKEN_API_GATEWAY=ghp_xxxxxxxxxxxx\n"
        "REMOTE_REPO_TOKEN_AUTH_SERVICE=ghp_yyyyyyyyyyyy\n"
        "FEDERATION_API_KEY=secret-key-for-incoming-requests\n",
    )

    assert read_secrets(secrets_path) == {
        "REMOTE_REPO_TOKEN_API_GATEWAY": "ghp_xxxxxxxxxxxx",
        "REMOTE_REPO_TOKEN_AUTH_SERVICE": "ghp_yyyyyyyyyyyy",
        "FEDERATION_API_KEY": "secret-key-for-incoming-requests",
    }


def test_it_handles_quotes_export_and_hashes_like_django_environ(secrets_path):
    write(
        secrets_path,
        "SINGLE='a b c'\n"
        'DOUBLE="x \\" y"\n'
        "export EXPORTED=yes\n"
        "HASH=abc#def # still the value\n"
        "EMPTY=\n"
        "LAST=1\n"
        "LAST=2\n",
    )

    assert read_secrets(secrets_path) == {
        "SINGLE": "a b c",
        "DOUBLE": 'x " y',
        "EXPORTED": "yes",
        "HASH": "abc#def # still the value",
        "EMPTY": "",
        "LAST": "2",
    }


def test_it_skips_a_malformed_line_without_logging_its_value(secrets_path, caplog):
    write(secrets_path, "GOOD=1\nBAD = hunter2\n")

    assert read_secrets(secrets_path) == {"GOOD": "1"}
    assert "line 2" in caplog.text
    assert "hunter2" not in caplog.text


def test_it_does_not_touch_os_environ(secrets_path):
    write(secrets_path, "FEDERATION_TEST_ONLY_SECRET=leak\n")

    read_secrets(secrets_path)

    assert "FEDERATION_TEST_ONLY_SECRET" not in os.environ


def test_it_returns_nothing_for_a_missing_file(secrets_path):
    assert read_secrets(secrets_path) == {}
    assert get_secret(secrets_path, "FEDERATION_API_KEY", "fallback") == "fallback"


def test_it_rereads_the_file_after_an_edit(secrets_path):
    write(secrets_path, "TOKEN=old\n")
    assert get_secret(secrets_path, "TOKEN") == "old"

    write(secrets_path, "TOKEN=new-value\n")

    assert get_secret(secrets_path, "TOKEN") == "new-value"


def test_it_rereads_an_edit_of_the_same_size_with_a_new_mtime(secrets_path):
    write(secrets_path, "TOKEN=aaa\n")
    assert read_secrets(secrets_path) == {"TOKEN": "aaa"}
    before = secrets_path.stat()

    write(secrets_path, "TOKEN=bbb\n")
    os.utime(secrets_path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))

    assert read_secrets(secrets_path) == {"TOKEN": "bbb"}


def test_it_serves_an_unchanged_file_from_the_cache(secrets_path, monkeypatch):
    write(secrets_path, "TOKEN=abc\n")
    read_secrets(secrets_path)
    calls = []
    monkeypatch.setattr("federation_site.secrets._parse", lambda *a, **k: calls.append(1) or {})

    assert read_secrets(secrets_path) == {"TOKEN": "abc"}
    assert calls == []


def test_it_returns_a_copy_of_the_cached_values(secrets_path):
    write(secrets_path, "TOKEN=abc\n")

    read_secrets(secrets_path)["TOKEN"] = "changed"

    assert read_secrets(secrets_path) == {"TOKEN": "abc"}


def test_it_prefers_the_environment_over_the_file(secrets_path, monkeypatch):
    write(secrets_path, "FEDERATION_API_KEY=from-file\n")
    assert get_secret(secrets_path, "FEDERATION_API_KEY") == "from-file"

    monkeypatch.setenv("FEDERATION_API_KEY", "from-env")

    assert get_secret(secrets_path, "FEDERATION_API_KEY") == "from-env"


def test_it_treats_an_empty_value_as_unset(secrets_path, monkeypatch):
    write(secrets_path, "FEDERATION_API_KEY=\n")
    monkeypatch.setenv("WEBHOOK_SIGNING_SECRET", "")

    assert get_secret(secrets_path, "FEDERATION_API_KEY") is None
    assert get_secret(secrets_path, "WEBHOOK_SIGNING_SECRET", "dflt") == "dflt"


def test_it_replaces_a_secret_and_keeps_other_lines(secrets_path):
    write(secrets_path, "# header\nA=1\n\n# the token\nexport TOKEN=old\nB=2\nTOKEN=older-duplicate\n")

    set_secret(secrets_path, "TOKEN", "new")

    assert secrets_path.read_text() == "# header\nA=1\n\n# the token\nexport TOKEN=new\nB=2\n"
    assert read_secrets(secrets_path) == {"A": "1", "TOKEN": "new", "B": "2"}


def test_it_appends_a_new_secret_and_sets_mode_0600(secrets_path):
    write(secrets_path, "A=1")
    secrets_path.chmod(0o644)

    set_secret(secrets_path, "REMOTE_REPO_TOKEN_API_GATEWAY", "ghp_123")

    assert secrets_path.read_text() == "A=1\nREMOTE_REPO_TOKEN_API_GATEWAY=ghp_123\n"
    assert stat.S_IMODE(secrets_path.stat().st_mode) == 0o600
    assert sorted(p.name for p in secrets_path.parent.iterdir()) == [SECRETS_FILENAME]


def test_it_creates_the_file_when_setting_the_first_secret(secrets_path):
    set_secret(secrets_path, "TOKEN", "x")

    assert secrets_path.read_text() == "TOKEN=x\n"
    assert stat.S_IMODE(secrets_path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "value", ["plain", "with spaces", "has#hash", "'quoted'", '"double"', 'back\\slash "x"', "'", ""]
)
def test_it_round_trips_any_single_line_value(secrets_path, value):
    set_secret(secrets_path, "TOKEN", value)

    assert read_secrets(secrets_path)["TOKEN"] == value


def test_it_refuses_a_value_with_a_line_break_or_a_bad_name(secrets_path):
    with pytest.raises(ValueError, match="line breaks"):
        set_secret(secrets_path, "TOKEN", "a\nB=2")
    with pytest.raises(ValueError, match="invalid secret name"):
        set_secret(secrets_path, "MY-TOKEN", "x")


@pytest.mark.parametrize(
    ("remote_url", "name"),
    [
        ("github.com/org/api-gateway", "REMOTE_REPO_TOKEN_API_GATEWAY"),
        ("github.com/org/auth-service", "REMOTE_REPO_TOKEN_AUTH_SERVICE"),
        ("github.com/org/my.repo", "REMOTE_REPO_TOKEN_MY_REPO"),
        ("gitlab.com/group/sub/web_app/", "REMOTE_REPO_TOKEN_WEB_APP"),
    ],
)
def test_it_names_tokens_like_the_seed(remote_url, name):
    assert token_env_name(remote_url) == name


def test_it_writes_a_template_that_parses(secrets_path):
    text = default_secrets_text(secret_key="k#e=y'", api_key="api-123", webhook_secret="wh-456")
    write(secrets_path, text)

    assert read_secrets(secrets_path) == {
        "DJANGO_SECRET_KEY": "k#e=y'",
        "FEDERATION_API_KEY": "api-123",
        "WEBHOOK_SIGNING_SECRET": "wh-456",
    }
    assert "gitignored" in text
    assert "# REMOTE_REPO_TOKEN_API_GATEWAY=" in text


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_it_tells_whether_git_tracks_a_file(tmp_path):
    git("init", "-q", cwd=tmp_path)
    (tmp_path / ".sudocode").mkdir()
    tracked = tmp_path / ".sudocode" / "federation.config.json"
    untracked = tmp_path / ".sudocode" / SECRETS_FILENAME
    tracked.write_text("{}\n")
    untracked.write_text("A=1\n")
    git("add", str(tracked), cwd=tmp_path)

    assert is_tracked_by_git(tmp_path, tracked) is True
    assert is_tracked_by_git(tmp_path, ".sudocode/federation.config.json") is True
    assert is_tracked_by_git(tmp_path, untracked) is False


def test_it_says_untracked_outside_a_git_repo(tmp_path):
    (tmp_path / "x").write_text("")

    assert is_tracked_by_git(tmp_path, tmp_path / "x") is False


def test_it_says_untracked_when_git_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    assert is_tracked_by_git(tmp_path, tmp_path / "x") is False
