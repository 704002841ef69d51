import json
import os
import stat
from pathlib import Path

import pytest

from federation_site.config import (
    CONFIG_FILENAME,
    ConfigError,
    ConfigNotFoundError,
    FederationConfig,
    default_config,
    identity_from_git_remote,
    load_config,
    parse_config,
    write_config,
)

# The seed's "Configuration Reference" example, verbatim.
SEED_REFERENCE = """
{
  "enabled": true,
  "local_identity": {
    "url": "github.com/org/my-repo",
    "display_name": "My Service",
    "description": "User authentication service"
  },

  "endpoints": {
    "rest": "https://my-service.dev/api/v1",
    "websocket": "wss://my-service.dev/api/v1/ws",
    "git": "https://github.com/org/my-repo.git"
  },

  "remote_repos": [
    {
      "url": "github.com/org/api-gateway",
      "display_name": "API Gateway",
      "trust_level": "trusted",
      "permissions": {
        "query": { "allowed": true },
        "mutate": {
          "allowed": true,
          "auto_approve_conditions": ["priority >= 2"]
        },
        "subscribe": { "allowed": true }
      },
      "sync": {
        "auto_sync": true,
        "interval_minutes": 15
      }
    }
  ],

  "policies": {
    "incoming_requests": {
      "query": {
        "allowed": true,
        "rate_limit": { "requests_per_minute": 60 }
      },
      "mutate": {
        "allowed": true,
        "auto_approve": [
          {
            "condition": "trust_level === 'trusted' && priority >= 2",
            "notify": []
          }
        ],
        "require_approval": [
          {
            "condition": "priority <= 1 || labels.includes('breaking-change')",
            "notify": ["@team-leads", "@oncall"]
          }
        ]
      }
    }
  },

  "cache": {
    "ttl_seconds": 300,
    "max_size_mb": 100,
    "eviction_policy": "lru"
  },

  "notifications": {
    "channels": [
      {
        "type": "slack",
        "webhook_url": "https://hooks.slack.com/...",
        "events": ["request_pending_approval", "remote_repo_unreachable"]
      }
    ]
  }
}
"""

# The seed's Permission Model, A2A and Rate Limiting examples, merged into one file.
SEED_PERMISSIONS = {
    "remote_repos": [
        {
            "url": "github.com/org/api-service",
            "display_name": "API Service",
            "trust_level": "trusted",
            "permissions": {
                "query": {
                    "allowed": True,
                    "entities": ["issue", "spec"],
                    "filters": ["status", "labels", "priority"],
                    "exclude_fields": [],
                },
                "mutate": {
                    "allowed": True,
                    "operations": ["create_issue"],
                    "auto_approve_conditions": [
                        "priority >= 2",
                        "!labels.includes('breaking-change')",
                        "!labels.includes('security')",
                    ],
                    "max_creates_per_day": 20,
                },
                "subscribe": {"allowed": True, "max_subscriptions": 10},
            },
        },
        {
            "url": "github.com/external/partner-repo",
            "display_name": "Partner Project",
            "trust_level": "verified",
            "permissions": {
                "query": {
                    "allowed": True,
                    "entities": ["issue"],
                    "filters": ["status"],
                    "exclude_fields": ["assignee", "estimated_minutes"],
                },
                "mutate": {"allowed": False},
                "subscribe": {"allowed": False},
            },
        },
    ],
    "a2a_policies": {
        "query": {"auto_respond": True, "allowed_filters": ["status", "labels", "priority"]},
        "mutate": {
            "auto_approve": [{"condition": "from_trusted_repo && labels.includes('auto-approve')", "max_priority": 2}],
            "require_human": [{"condition": "priority <= 1 || labels.includes('breaking-change')"}],
        },
        "delegate": {"auto_accept": False, "notify": ["@team-leads"]},
    },
    "rate_limits": {
        "per_repo": {"queries_per_minute": 60, "mutations_per_hour": 10, "subscriptions_max": 20},
        "global": {"cross_repo_bandwidth_mb_per_day": 1000, "max_remote_repos": 50},
    },
}


def error_for(data: dict | str) -> ConfigError:
    text = data if isinstance(data, str) else json.dumps(data, indent=2)
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value


def remotes(*extra: dict) -> dict:
    return {"remote_repos": [{"url": f"github.com/org/repo-{i}", **fields} for i, fields in enumerate(extra)]}


def test_it_parses_the_seed_configuration_reference():
    cfg = parse_config(SEED_REFERENCE)

    assert cfg.enabled is True
    assert cfg.local_identity.url == "github.com/org/my-repo"
    assert cfg.endpoints.websocket == "wss://my-service.dev/api/v1/ws"
    gateway = cfg.remote("github.com/org/api-gateway")
    assert gateway.trust_level == "trusted"
    assert gateway.permissions.mutate.auto_approve_conditions == ["priority >= 2"]
    assert gateway.sync.interval_minutes == 15
    assert cfg.policies.incoming_requests.mutate.require_approval[0].notify == ["@team-leads", "@oncall"]
    assert cfg.notifications.channels[0].type == "slack"
    assert cfg.cache.ttl_seconds == 300


def test_it_parses_the_seed_permission_a2a_and_rate_limit_examples():
    cfg = parse_config(json.dumps(SEED_PERMISSIONS))

    partner = cfg.remote("github.com/external/partner-repo")
    assert partner.trust_level == "verified"
    assert partner.permissions.query.exclude_fields == ["assignee", "estimated_minutes"]
    assert partner.permissions.mutate.allowed is False
    assert cfg.remote("github.com/org/api-service").permissions.mutate.max_creates_per_day == 20
    assert cfg.a2a_policies.mutate.auto_approve[0].max_priority == 2
    assert cfg.a2a_policies.delegate.notify == ["@team-leads"]
    assert cfg.rate_limits.global_.cross_repo_bandwidth_mb_per_day == 1000


def test_it_uses_the_seed_defaults_for_an_empty_file():
    cfg = parse_config("{}")

    assert cfg.enabled is False
    assert cfg.local_identity is None
    assert cfg.remote_repos == []
    assert cfg.rate_limits.per_repo.queries_per_minute == 60
    assert cfg.rate_limits.per_repo.mutations_per_hour == 10
    assert cfg.rate_limits.per_repo.subscriptions_max == 20
    assert cfg.rate_limits.global_.max_remote_repos == 50
    assert (cfg.cache.ttl_seconds, cfg.cache.max_size_mb, cfg.cache.eviction_policy) == (300, 100, "lru")
    assert (cfg.git.auto_commit, cfg.git.push) == (False, False)
    assert (cfg.http.timeout_seconds, cfg.http.connect_timeout_seconds, cfg.http.retries) == (10, 3, 3)


def test_it_grants_a_remote_nothing_by_default():
    remote = parse_config(json.dumps(remotes({}))).remote_repos[0]

    assert remote.trust_level == "untrusted"
    assert not remote.permissions.query.allowed
    assert not remote.permissions.mutate.allowed
    assert remote.permissions.subscribe.allowed is None  # the trust level (untrusted) decides: no
    assert remote.sync.auto_sync is False
    assert remote.sync.interval_minutes == 60


def test_it_names_the_file_key_and_choices_for_a_bad_trust_level():
    error = error_for(remotes({"trust_level": "trusted"}, {"trust_level": "trustd"}))

    expected = "remote_repos[1].trust_level: 'trustd' is not one of trusted, verified, untrusted"
    assert str(error) == f"federation.config.json: {expected}"
    assert error.key_path == "remote_repos[1].trust_level"
    assert error.reason == "'trustd' is not one of trusted, verified, untrusted"
    assert error.path == Path(CONFIG_FILENAME)


def test_it_suggests_the_key_meant_by_a_typo():
    error = error_for(remotes({}, {}, {"permiss": {}}))

    assert str(error) == "federation.config.json: remote_repos[2].permiss: unknown key (did you mean 'permissions'?)"


def test_it_lists_the_known_keys_when_nothing_is_close():
    error = error_for({"rate_limits": {"global": {"zzz": 1}}})

    assert str(error) == (
        "federation.config.json: rate_limits.global.zzz: "
        "unknown key (expected one of: cross_repo_bandwidth_mb_per_day, max_remote_repos)"
    )


def test_it_rejects_unknown_keys_at_the_top_level():
    assert str(error_for({"remote_repo": []})) == (
        "federation.config.json: remote_repo: unknown key (did you mean 'remote_repos'?)"
    )


def test_it_reports_a_missing_required_key_on_its_parent():
    error = error_for({"remote_repos": [{"display_name": "x"}]})

    assert str(error) == "federation.config.json: remote_repos[0]: missing key 'url'"
    assert error.key_path == "remote_repos[0]"


def test_it_requires_a_local_identity_when_enabled():
    assert str(error_for({"enabled": True})) == (
        "federation.config.json: missing key 'local_identity' (required when enabled is true)"
    )


def test_it_gives_line_and_column_for_invalid_json():
    error = error_for('{\n  "enabled": true\n    "cache": {}\n}')

    assert str(error) == "federation.config.json: line 3, column 5: invalid JSON (Expecting ',' delimiter)"
    assert (error.line, error.column, error.key_path) == (3, 5, "")


def test_it_rejects_a_top_level_that_is_not_an_object():
    assert str(error_for("[]")) == "federation.config.json: expected a JSON object at the top level, got a list"


def test_it_rejects_a_key_given_twice():
    error = error_for('{"remote_repos": [{"url": "github.com/a/b", "trust_level": "untrusted", "trust_level": "x"}]}')

    assert str(error) == "federation.config.json: remote_repos[0]: duplicate key 'trust_level'"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cache": {"ttl_seconds": "abc"}}, "cache.ttl_seconds: expected an integer, got 'abc'"),
        # Strict: a quoted number is not a number, a float is not an integer, true is not 1.
        ({"cache": {"ttl_seconds": "300"}}, "cache.ttl_seconds: expected an integer, got '300'"),
        ({"cache": {"max_size_mb": 1.5}}, "cache.max_size_mb: expected an integer, got 1.5"),
        ({"http": {"retries": True}}, "http.retries: expected an integer, got true"),
        ({"enabled": "false"}, "enabled: expected true or false, got 'false'"),
        ({"remote_repos": {}}, "remote_repos: expected a list, got an object"),
        ({"cache": None}, "cache: expected an object, got null"),
        ({"local_identity": {"url": 42}}, "local_identity.url: expected a string, got 42"),
        ({"cache": {"ttl_seconds": 0}}, "cache.ttl_seconds: must be greater than 0, got 0"),
        ({"http": {"timeout_seconds": -1}}, "http.timeout_seconds: must be greater than 0, got -1"),
        ({"cache": {"eviction_policy": "lfu"}}, "cache.eviction_policy: 'lfu' is not one of lru"),
        (
            remotes({"permissions": {"query": {"entities": ["issue", "epic"]}}}),
            "remote_repos[0].permissions.query.entities[1]: 'epic' is not one of issue, spec",
        ),
        (
            remotes({"permissions": {"mutate": {"auto_approve_conditions": [""]}}}),
            "remote_repos[0].permissions.mutate.auto_approve_conditions[0]: must not be empty",
        ),
        (
            {"a2a_policies": {"mutate": {"auto_approve": [{"condition": "true", "max_priority": 7}]}}},
            "a2a_policies.mutate.auto_approve[0].max_priority: must be at most 4, got 7",
        ),
        (
            {"local_identity": {"url": "https://github.com/org/repo"}},
            "local_identity.url: 'https://github.com/org/repo' is not a repo identity "
            "(expected host/path like 'github.com/org/repo')",
        ),
        (
            remotes({"endpoint": "ftp://example.com"}),
            "remote_repos[0].endpoint: expected a http/https URL, got 'ftp://example.com'",
        ),
        (
            {"notifications": {"channels": [{"type": "slack"}]}},
            "notifications.channels[0]: missing key 'webhook_url' (required for a slack channel)",
        ),
        (
            {"notifications": {"channels": [{"type": "email", "to": ["oncall"]}]}},
            "notifications.channels[0].to[0]: expected an email address, got 'oncall'",
        ),
    ],
)
def test_it_explains_a_wrong_value(data, message):
    assert str(error_for(data)) == f"federation.config.json: {message}"


def test_it_names_both_indexes_of_a_duplicate_remote():
    error = error_for(
        {
            "remote_repos": [
                {"url": "github.com/org/a"},
                {"url": "github.com/org/b"},
                {"url": "GitHub.com/org/a"},
            ]
        }
    )

    expected = "remote_repos[2].url: duplicate of remote_repos[0].url ('github.com/org/a')"
    assert str(error) == f"federation.config.json: {expected}"


def test_it_enforces_max_remote_repos():
    data = {**remotes({}, {}), "rate_limits": {"global": {"max_remote_repos": 1}}}

    expected = "remote_repos: 2 remotes configured, rate_limits.global.max_remote_repos allows 1"
    assert str(error_for(data)) == f"federation.config.json: {expected}"


def test_it_keeps_every_problem_and_reports_the_first():
    error = error_for({"cache": {"ttl_seconds": "abc"}, "git": {"push": "yes"}})

    assert error.problems == (
        ("cache.ttl_seconds", "expected an integer, got 'abc'"),
        ("git.push", "expected true or false, got 'yes'"),
    )


def test_it_is_frozen():
    cfg = parse_config("{}")

    with pytest.raises(ValueError):
        cfg.enabled = True


def test_it_finds_a_remote_by_url_ignoring_case_and_trailing_slash():
    cfg = parse_config(json.dumps(remotes({"display_name": "Zero"})))

    assert cfg.remote("GitHub.com/org/repo-0/").display_name == "Zero"
    assert cfg.remote("github.com/org/other") is None


def test_it_loads_a_file_and_prefixes_errors_with_its_name(tmp_path):
    path = tmp_path / "federation.config.json"
    path.write_text('{"cache": {"ttl_seconds": "abc"}}')

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert str(info.value) == "federation.config.json: cache.ttl_seconds: expected an integer, got 'abc'"
    assert info.value.path == path


def test_it_says_how_to_configure_when_the_file_is_missing(tmp_path):
    path = tmp_path / ".sudocode" / CONFIG_FILENAME

    with pytest.raises(ConfigNotFoundError) as info:
        load_config(path)

    assert str(info.value) == f"federation.config.json not found at {path}: run `sudocode-fed init`"
    assert isinstance(info.value, ConfigError)


def test_it_accepts_a_byte_order_mark(tmp_path):
    path = tmp_path / CONFIG_FILENAME
    path.write_bytes(b'\xef\xbb\xbf{"enabled": false}')

    assert load_config(path).enabled is False


def test_it_writes_a_default_config_that_validates(tmp_path):
    data = default_config(url="github.com/org/my-repo", display_name="My Service")
    path = tmp_path / ".sudocode" / CONFIG_FILENAME

    write_config(path, data)
    cfg = load_config(path)

    assert isinstance(cfg, FederationConfig)
    assert cfg.enabled is True
    assert cfg.local_identity.display_name == "My Service"
    assert cfg.remote_repos == []
    # The seed's trust model, written as rules the maintainer can read (issue 11).
    [trusted] = cfg.policies.incoming_requests.mutate.auto_approve
    assert trusted.condition == "from_trusted_repo"
    [urgent] = cfg.policies.incoming_requests.mutate.require_approval
    assert urgent.condition == "priority <= 1 || labels.includes('breaking-change')"
    text = path.read_text()
    assert text.endswith("}\n")
    assert text.startswith('{\n  "enabled": true,\n  "local_identity": {\n    "url"')
    assert json.loads(text) == data


def test_it_refuses_a_default_config_with_a_bad_identity():
    with pytest.raises(ConfigError, match=r"local_identity\.url"):
        default_config(url="https://github.com/org/repo", display_name="x")


def test_it_refuses_to_write_an_invalid_config(tmp_path):
    path = tmp_path / CONFIG_FILENAME
    write_config(path, {"enabled": False})

    with pytest.raises(ConfigError) as info:
        write_config(path, {"remote_repos": [{"url": "github.com/a/b", "trust_level": "trustd"}]})

    assert str(info.value).startswith("federation.config.json: remote_repos[0].trust_level: 'trustd'")
    assert json.loads(path.read_text()) == {"enabled": False}
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILENAME]


def test_it_leaves_the_old_file_when_the_replace_fails(tmp_path, monkeypatch):
    path = tmp_path / CONFIG_FILENAME
    write_config(path, {"enabled": False})

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_config(path, {"enabled": False, "cache": {"ttl_seconds": 60}})

    assert json.loads(path.read_text()) == {"enabled": False}
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILENAME]


def test_it_fsyncs_before_replacing(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append("replace"), real_replace(a, b)))

    write_config(tmp_path / CONFIG_FILENAME, {"enabled": False})

    assert calls[:2] == ["fsync", "replace"]


def test_it_keeps_the_mode_of_an_existing_file(tmp_path):
    path = tmp_path / CONFIG_FILENAME
    write_config(path, {})
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.chmod(0o640)

    write_config(path, {"enabled": False})

    assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.parametrize(
    "remote_url",
    [
        "git@github.com:org/repo.git",
        "git@github.com:org/repo",
        "github.com:org/repo.git",
        "https://github.com/org/repo.git",
        "https://github.com/org/repo/",
        "https://user:token@GitHub.com/org/repo.git",
        "http://github.com:8080/org/repo",
        "ssh://git@github.com:22/org/repo",
        "ssh://git@github.com/org/repo.git",
        "git://github.com/org/repo.git",
    ],
)
def test_it_derives_the_identity_from_a_git_remote(remote_url):
    assert identity_from_git_remote(remote_url) == "github.com/org/repo"


def test_it_keeps_nested_groups_in_the_identity():
    assert identity_from_git_remote("git@gitlab.com:group/sub/repo.git") == "gitlab.com/group/sub/repo"


@pytest.mark.parametrize("remote_url", ["/srv/git/repo.git", "file:///srv/git/repo", "../repo", "https://github.com/"])
def test_it_refuses_a_remote_without_host_or_path(remote_url):
    with pytest.raises(ValueError, match="cannot derive a repo identity"):
        identity_from_git_remote(remote_url)


def test_it_produces_identities_that_the_config_accepts():
    identity = identity_from_git_remote("git@github.com:org/my-repo.git")

    assert parse_config(json.dumps({"local_identity": {"url": identity}})).local_identity.url == identity
