"""`node.git_settings()`: the config's `git` keys a write reads, without validating a file the database records
as good (issue 16), and through full validation otherwise."""

from __future__ import annotations

import json

import pytest

from federation_site import config as config_module
from federation_site import node
from federation_site.config import ConfigError, GitSettings, default_config, write_config
from remotes import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def config_path(node_repo):
    path = node_repo / ".sudocode" / "federation.config.json"
    write_config(path, default_config(url="github.com/org/frontend", display_name="Frontend"))
    _fresh_process()
    yield path
    _fresh_process()


def _fresh_process() -> None:
    """Forget what this process validated or was told, as a new CLI process starts."""
    node._config_cache.clear()
    node._config_refused.clear()
    node._config_vouched.clear()
    services._reconciled.clear()


def _edit(path, **git) -> None:
    data = json.loads(path.read_text())
    data["git"].update(git)
    path.write_text(json.dumps(data, indent=2))


def _no_validation(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the config was validated again")

    monkeypatch.setattr(config_module, "load_config", refuse)


def test_the_defaults_are_the_configs_own():
    assert node.GIT_WRITE_DEFAULTS == node.GitWriteSettings(
        **GitSettings().model_dump(include={"auto_commit", "commit_remote_changes", "push"})
    )


def test_a_config_the_database_records_as_good_is_read_without_validating_it(config_path, monkeypatch):
    _edit(config_path, auto_commit=True, push=True, commit_remote_changes=False)
    services.remotes_reconcile()  # validates the file and records its size and mtime
    _fresh_process()
    _no_validation(monkeypatch)
    assert services.config_reconciled()
    assert node.git_settings() == node.GitWriteSettings(auto_commit=True, commit_remote_changes=False, push=True)


def test_keys_left_out_of_a_good_config_take_the_defaults(config_path, monkeypatch):
    data = json.loads(config_path.read_text())
    del data["git"]
    config_path.write_text(json.dumps(data))
    services.remotes_reconcile()
    _fresh_process()
    _no_validation(monkeypatch)
    assert services.config_reconciled()
    assert node.git_settings() == node.GIT_WRITE_DEFAULTS


def test_a_config_edited_since_it_was_recorded_is_validated(config_path):
    services.remotes_reconcile()
    _fresh_process()
    assert services.config_reconciled()
    _edit(config_path, auto_commit=True)  # a good edit: validated, then used
    assert node.git_settings().auto_commit is True
    _fresh_process()
    assert services.config_reconciled() is False  # the database recorded the file before the edit
    _edit(config_path, auto_commit="yes")  # a broken edit stops the write with the file, key and reason
    with pytest.raises(ConfigError, match=r"git\.auto_commit"):
        node.git_settings()


def test_a_running_node_keeps_its_last_good_git_keys_when_an_edit_is_refused(config_path):
    _edit(config_path, auto_commit=True)
    assert node.git_settings().auto_commit is True  # validated: this process now holds a good config
    _edit(config_path, auto_commit="yes", push=True)
    assert node.git_settings() == node.GitWriteSettings(auto_commit=True)
    assert node.config_problem() is not None


def test_no_config_file_means_no_git_keys(node_repo):
    _fresh_process()
    assert node.git_settings() is None
