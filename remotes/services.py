"""Writes about remotes: adding, changing and removing them (written back to federation.config.json, so git
records every trust decision), their API keys, discovery, and refreshing the cached state of cross-repo
references. Network calls go through `remotes.client`, never inside a database transaction."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from federation_site import identity, node
from federation_site.secrets import set_secret, token_env_name
from remotes.models import ConfigStamp, CrossRepoReference, RelationshipType, RemoteRepo, TrustLevel
from remotes.policy import Caller, PermissionDenied
from tracker.models import ContentRef, Entity

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "sfk_"
BATCH = 500


# --- the declared truth: federation.config.json ------------------------------------------------------------


def _config_data() -> dict:
    path = node.layout().config_path
    if not path.exists():
        raise ValidationError({"config": "this repository has no federation.config.json: run `sudocode-fed init`"})
    return json.loads(path.read_text())


class RemoteExists(ValidationError):
    """The url is already a declared remote (a 409 on the management API; a ValidationError everywhere else)."""


# What a remote's key in federation.config.json is called where callers name it (the service's arguments).
_FIELD_OF_KEY = {"sync.auto_sync": "auto_sync", "sync.interval_minutes": "sync_interval_minutes"}


def _write_config_data(data: dict, *, entry: dict | None = None) -> None:
    """Validate and write the config, then reconcile the rows. A problem inside `entry` (the remote being
    added or changed) is a ValidationError naming the argument (`endpoint`, `sync_interval_minutes`,
    `permissions.mutate.allowed`); any other problem is the ConfigError."""
    from federation_site.config import ConfigError, write_config  # pydantic: loaded only when needed (CLI start)

    try:
        write_config(node.layout().config_path, data)
    except ConfigError as exc:
        if entry is None:
            raise
        prefix = f"remote_repos[{next(i for i, r in enumerate(data['remote_repos']) if r is entry)}]"
        mine = [(path, reason) for path, reason in exc.problems if path.startswith(prefix)]
        if not mine:
            raise
        errors: dict[str, list[str]] = {}
        for path, reason in mine:
            key = path[len(prefix) :].lstrip(".") or "url"
            errors.setdefault(_FIELD_OF_KEY.get(key, key), []).append(reason)
        raise ValidationError(errors) from None
    remotes_reconcile(force=True)


def _find(data: dict, url: str) -> dict | None:
    key = url.strip().rstrip("/").lower()
    return next((r for r in data.get("remote_repos", []) if r.get("url", "").lower() == key), None)


def remote_add(
    *,
    url: str,
    actor: str,
    trust_level: str = TrustLevel.UNTRUSTED,
    endpoint: str | None = None,
    display_name: str | None = None,
    token: str | None = None,
    discover: bool = True,
    transport: str = "rest",
    auto_sync: bool | None = None,
    sync_interval_minutes: int | None = None,
    permissions: dict | None = None,
    public_key: str | None = None,
    require_signatures: bool = False,
) -> tuple[RemoteRepo, str]:
    """Declare a remote in the config, give it an API key (returned once, stored hashed), store the token we
    present to it, and run discovery when it answers. Returns the remote and its new API key.

    Raises RemoteExists (a ValidationError on `url`) when the url is declared already, and ValidationError
    naming the argument for anything the config refuses (`url`, `trust_level`, `endpoint`, `transport`,
    `sync_interval_minutes`, `permissions.<path>`, or `url` again when rate_limits.global.max_remote_repos is
    reached); nothing is written then. Defaults are
    the seed's remote_repos: untrusted, no auto_sync, a 60-minute interval, the url's last part as the name.

    `transport`: "rest" (our endpoints) or "a2a" (A2A 1.0 through the Agent Card at `endpoint`). A remote added
    for REST whose endpoint has no /federation/info (404) but serves an A2A Agent Card becomes an A2A remote.

    `public_key` (`ed25519:<base64url>`): its signing key, pinned (a ValidationError on `public_key` when it is
    not one); left out, the key its discover answer names is pinned (trust on first use, as SSH does: the CLI
    shows its fingerprint for the admin to compare). `require_signatures`: refuse its unsigned messages (401)."""
    url = url.strip().rstrip("/")
    _check_trust(trust_level)
    data = _config_data()
    if _find(data, url):
        raise RemoteExists({"url": f"{url} is already a remote: see `sudocode-fed remote show {url}`"})
    cfg = node.config()
    limit = cfg.rate_limits.global_.max_remote_repos if cfg is not None else None
    declared = len(data.get("remote_repos") or [])
    if limit is not None and declared >= limit:
        raise ValidationError(
            {
                "url": f"this node has {declared} remotes, as many as rate_limits.global.max_remote_repos ({limit}) "
                "allows: remove one (`sudocode-fed remote remove`) or raise the limit in federation.config.json"
            }
        )
    entry: dict[str, Any] = {
        "url": url,
        "display_name": display_name or url.rsplit("/", 1)[-1],
        "trust_level": trust_level,
    }
    if endpoint:
        entry["endpoint"] = endpoint
    if transport not in ("rest", "a2a"):
        raise ValidationError({"transport": f"{transport!r} is not one of rest, a2a"})
    if transport == "a2a":
        if not endpoint:
            raise ValidationError({"endpoint": "an A2A remote needs --endpoint: the URL its agent card is served at"})
        entry["transport"] = "a2a"
    _set_sync(entry, auto_sync, sync_interval_minutes)
    if permissions is not None:
        entry["permissions"] = permissions
    if public_key:
        entry["public_key"] = public_key
    if require_signatures:
        entry["require_signatures"] = True
    data.setdefault("remote_repos", []).append(entry)
    _write_config_data(data, entry=entry)
    remote = RemoteRepo.objects.get(url=url)
    RemoteRepo.objects.filter(url=url).update(added_by=actor)
    api_key = remote_rotate_key(remote=remote)
    if token:
        remote_set_token(remote=remote, token=token)
    if discover and remote.rest_endpoint:
        from remotes.client import RemoteError
        from remotes.sync import remote_discover

        try:
            remote_discover(remote=remote, pin_key=not public_key)
        except RemoteError as exc:
            if transport == "rest" and getattr(exc, "status", None) == 404 and _speaks_a2a(remote.rest_endpoint):
                _set_transport(url, "a2a")
                try:
                    remote_discover(remote=remote, pin_key=not public_key)
                except RemoteError as again:
                    logger.info("discovery of %s over A2A failed: %s", url, again)
            else:
                logger.info("discovery of %s failed: %s", url, exc)
    remote.refresh_from_db()
    return remote, api_key


def remote_pin_key(*, url: str, public_key: str | None, require_signatures: bool | None = None) -> None:
    """Pin `public_key` (`ed25519:<base64url>`, None: unpin) for the remote `url` in the config, and set
    `require_signatures` when given. ValidationError on `public_key` for a key the config refuses, on `url` for a
    remote not declared."""
    data = _config_data()
    entry = _find(data, url)
    if entry is None:
        raise ValidationError({"url": f"{url} is not declared in federation.config.json"})
    if public_key:
        entry["public_key"] = public_key
    else:
        entry.pop("public_key", None)
    if require_signatures is not None:
        entry["require_signatures"] = require_signatures
    _write_config_data(data, entry=entry)


def _speaks_a2a(endpoint: str) -> bool:
    from remotes.a2a_client import agent_card, jsonrpc_url
    from remotes.client import RemoteError

    try:
        return jsonrpc_url(agent_card(endpoint)) is not None
    except (RemoteError, ValueError):
        return False


def _set_transport(url: str, transport: str) -> None:
    data = _config_data()
    _find(data, url)["transport"] = transport
    _write_config_data(data)


def _set_sync(entry: dict, auto_sync: bool | None, interval_minutes: int | None) -> None:
    if auto_sync is not None:
        entry.setdefault("sync", {})["auto_sync"] = auto_sync
    if interval_minutes is not None:
        entry.setdefault("sync", {})["interval_minutes"] = interval_minutes


def remote_update(
    *,
    remote: RemoteRepo,
    trust_level: str | None = None,
    endpoint: str | None = None,
    display_name: str | None = None,
    permissions: dict | None = None,
    auto_sync: bool | None = None,
    sync_interval_minutes: int | None = None,
) -> RemoteRepo:
    """Change what the config declares about `remote`; None leaves a field as it is. Written to
    federation.config.json, then copied to the row. Raises ValidationError naming the argument the config
    refuses (`trust_level`, `endpoint`, `display_name`, `sync_interval_minutes`, `permissions.<path>`), or `url`
    when the remote is no longer declared."""
    data = _config_data()
    entry = _find(data, remote.url)
    if entry is None:
        raise ValidationError({"url": f"{remote.url} is not declared in federation.config.json"})
    if trust_level is not None:
        _check_trust(trust_level)
        entry["trust_level"] = trust_level
    if endpoint is not None:
        entry["endpoint"] = endpoint
    if display_name is not None:
        entry["display_name"] = display_name
    if permissions is not None:
        entry["permissions"] = permissions
    _set_sync(entry, auto_sync, sync_interval_minutes)
    _write_config_data(data, entry=entry)
    return RemoteRepo.objects.get(url=remote.url)


def remote_remove(*, remote: RemoteRepo) -> None:
    data = _config_data()
    entry = _find(data, remote.url)
    if entry is not None:
        data["remote_repos"].remove(entry)
        _write_config_data(data)
    RemoteRepo.objects.filter(url=remote.url).delete()


def remote_set_token(*, remote: RemoteRepo, token: str) -> str:
    """Store the token we present to `remote` in secrets.env (REMOTE_REPO_TOKEN_<NAME>); returns the name."""
    if not token.strip():
        raise ValidationError({"token": "an empty token"})
    name = token_env_name(remote.url)
    set_secret(node.layout().secrets_path, name, token.strip())
    return name


def remote_rotate_key(*, remote: RemoteRepo) -> str:
    """A new API key for `remote` to present to us; the old one stops working. Returned once, kept hashed."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    RemoteRepo.objects.filter(url=remote.url).update(api_key_hash=hash_key(key), api_key_created_at=timezone.now())
    return key


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _check_trust(trust_level: str) -> None:
    if trust_level not in TrustLevel.values:
        raise ValidationError({"trust_level": f"{trust_level!r} is not one of {', '.join(TrustLevel.values)}"})


# Per process: the stamp of the config file this process last reconciled with (valid, or refused and the last good
# config used instead).
_reconciled: dict[str, tuple[int, int]] = {}


def _config_file_stamp(path) -> tuple[int, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def config_reconciled() -> bool:
    """Whether federation.config.json, as it is on disk now (its size and mtime), is the file remote_repos were
    last reconciled with by any process. Only a file that passed validation is recorded (ConfigStamp), so True
    also means the file is good: the CLI asks this (a stat and one query) instead of validating the file again
    on every run (`node.config()`, ~100 ms of pydantic; issue 16)."""
    path = node.layout().config_path
    stamp = _config_file_stamp(path)
    if ConfigStamp.objects.filter(pk=1).values_list("size", "mtime_ns").first() != stamp:
        return False
    _reconciled[str(path)] = stamp
    node.config_vouched(stamp)
    return True


def remotes_reconcile(*, force: bool = False) -> None:
    """Bring the remote_repos rows in line with federation.config.json: declared remotes get a row, changed
    trust levels and endpoints are copied, undeclared ones are dropped. When the file did not change since the
    last reconcile (by any process) this costs a stat and at most one query. A file `node.config()` refused
    (a running node keeps its last good config) is reconciled with that config but not recorded as reconciled,
    so `config_reconciled()` stays False for it."""
    path = node.layout().config_path
    stamp = _config_file_stamp(path)
    if not force:
        if _reconciled.get(str(path)) == stamp or config_reconciled():
            return
    cfg = node.config()
    refused = node.config_problem() is not None
    declared = {r.url: r for r in (cfg.remote_repos if cfg else [])}
    now = timezone.now()
    changed: list[str] = []
    with transaction.atomic():
        existing = {r.url: r for r in RemoteRepo.objects.all()}
        for url, rc in declared.items():
            fields = {
                "display_name": rc.display_name or url.rsplit("/", 1)[-1],
                "trust_level": rc.trust_level,
                "auto_sync": rc.sync.auto_sync,
                "sync_interval_minutes": rc.sync.interval_minutes,
            }
            if rc.endpoint:
                fields["rest_endpoint"] = str(rc.endpoint).rstrip("/")
            row = existing.get(url)
            if row is None:
                RemoteRepo.objects.create(url=url, added_at=now, added_by="federation.config.json", **fields)
                changed.append(url)
            elif any(getattr(row, k) != v for k, v in fields.items()):
                RemoteRepo.objects.filter(url=url).update(**fields)
                changed.append(url)
        gone = [url for url in existing if url not in declared]
        changed += gone
        if gone:
            RemoteRepo.objects.filter(url__in=gone).delete()
        if not refused:
            ConfigStamp.objects.update_or_create(pk=1, defaults={"size": stamp[0], "mtime_ns": stamp[1]})
    _reconciled[str(path)] = stamp
    if declared:
        from remotes.signals import remotes_changed

        remotes_changed.send(sender=RemoteRepo, urls=sorted(declared))


# --- cross-repo references ---------------------------------------------------------------------------------


def _remote_for_repo(repo: str, remotes: list[RemoteRepo]) -> RemoteRepo | None:
    """The one remote `repo` means, or None (unknown, or an ambiguous short form: never the first match)."""
    from remotes.selectors import remotes_for_repo

    matches = remotes_for_repo(repo, remotes)
    return matches[0] if len(matches) == 1 else None


def kind_of_id(remote_id: str) -> str:
    lowered = remote_id.lower()
    return "spec" if lowered.startswith(("s-", "spec-")) else "issue"


def declared_references(*, entities: Iterable[Entity] | None = None) -> dict[tuple[str, str, str, str], dict]:
    """The cross-repo references the entities (or all of them) declare: `[[org/repo#id]]` in content and the
    records' `remote_relationships`, keyed (local uuid, repo as written, remote id, relationship type), each with
    {local_entity_type, remote_entity_type, remote_uuid}. Read from the files' import, not from
    cross_repo_references, so it is current even where no rebuild ran yet."""
    content_refs = ContentRef.objects.exclude(repo="").select_related("entity")
    records = Entity.objects.filter(raw__contains='"remote_relationships"')
    if entities is not None:
        uuids = [e.uuid for e in entities]
        content_refs = content_refs.filter(entity__in=uuids)
        records = records.filter(uuid__in=uuids)
    wanted: dict[tuple[str, str, str, str], dict] = {}
    for ref in content_refs:
        rel = ref.rel_type if ref.rel_type in _REL_TYPES else "references"
        wanted[(ref.entity_id, ref.repo, ref.target_id, rel)] = {
            "local_entity_type": ref.entity.kind,
            "remote_entity_type": kind_of_id(ref.target_id),
            "remote_uuid": "",
        }
    for entity in records:
        for rel in json.loads(entity.raw).get("remote_relationships") or []:
            if not isinstance(rel, dict) or not rel.get("remote_id") or not rel.get("remote_repo"):
                continue
            rel_type = rel.get("type") if rel.get("type") in _REL_TYPES else "related"
            wanted[(entity.uuid, str(rel["remote_repo"]), str(rel["remote_id"]), rel_type)] = {
                "local_entity_type": entity.kind,
                "remote_entity_type": rel.get("remote_entity_type") or kind_of_id(str(rel["remote_id"])),
                "remote_uuid": str(rel.get("remote_uuid") or ""),
            }
    return wanted


def references_rebuild(*, entities: Iterable[Entity] | None = None, actor: str = "sudocode-fed") -> None:
    """Make cross_repo_references match the references the repository's entities hold: `[[org/repo#id]]` in
    content and the records' `remote_relationships`. Cached data of references that stay is kept."""
    entity_list = list(entities) if entities is not None else None
    scope = CrossRepoReference.objects.all()
    if entity_list is not None:
        scope = scope.filter(local_uuid__in=[e.uuid for e in entity_list])
    wanted = declared_references(entities=entity_list)
    remotes = list(RemoteRepo.objects.all())
    now = timezone.now()
    with transaction.atomic():
        have = {(r.local_uuid, r.repo, r.remote_id, r.relationship_type): r for r in scope}
        stale = [r.pk for key, r in have.items() if key not in wanted]
        if stale:
            CrossRepoReference.objects.filter(pk__in=stale).delete()
        new = []
        for key, extra in wanted.items():
            local_uuid, repo, remote_id, rel = key
            remote = _remote_for_repo(repo, remotes)
            row = have.get(key)
            if row is None:
                new.append(
                    CrossRepoReference(
                        local_uuid=local_uuid,
                        repo=repo,
                        remote_repo=remote,
                        remote_id=remote_id,
                        relationship_type=rel,
                        canonical_ref=f"{remote.repo_path if remote else identity.repo_path(repo)}#{remote_id}",
                        created_at=now,
                        created_by=actor,
                        **extra,
                    )
                )
            elif row.remote_repo_id != (remote.url if remote else None):
                CrossRepoReference.objects.filter(pk=row.pk).update(remote_repo=remote)
        CrossRepoReference.objects.bulk_create(new, batch_size=BATCH)


_REL_TYPES = frozenset(RelationshipType.values)


# --- signing keys (issue 17) ------------------------------------------------------------------------------------


def remote_key_rotation_receive(
    *, caller: Caller, public_key: str, method: str, url: str, headers: Mapping[str, str], body: bytes
) -> dict:
    """A remote announces its new public key in a message signed with its old one (the key pinned here), at the
    REST door: check the signature of the request as received, then `remote_key_rotation_accept`. Returns the
    key_rotation_response {"type", "status": "pinned", "key_id"}. PermissionDenied for an anonymous caller;
    SignatureProblem (a 401) when no key is pinned for it or the message is not signed with it.
    Source: issue 17, "key rotation is a signed announcement with the old key"."""
    from federation_site.keys import fingerprint, parse_public_key
    from remotes.signatures import verify_request

    pinned = _pinned_key(caller)
    verified = verify_request(
        method=method, url=url, headers=headers, body=body, public_keys={fingerprint(pinned): parse_public_key(pinned)}
    )
    return remote_key_rotation_accept(caller=caller, public_key=public_key, signature=verified.as_record())


def remote_key_rotation_accept(*, caller: Caller, public_key: str, signature: Mapping[str, Any] | None) -> dict:
    """Pin `public_key` for `caller` when the announcement carried `signature`: the record of an RFC 9421
    signature that verified with the key pinned for it (`Verified.as_record()`, as remotes.auth keeps it for the
    request: the A2A door passes that one). Writes the incoming `key_rotation` audit row with the signature.
    Returns the key_rotation_response. PermissionDenied for an anonymous caller; SignatureProblem when no key is
    pinned for it or the signature is missing or by another key."""
    from audit.services import audit_record, received_signature
    from federation_site.keys import fingerprint
    from remotes.signatures import SignatureProblem

    pinned = _pinned_key(caller)
    if not signature:
        raise SignatureProblem(
            f"a key rotation from {caller} must be signed with its pinned key: this one is not signed"
        )
    if signature.get("key_id") != fingerprint(pinned):
        raise SignatureProblem(
            f"a key rotation from {caller} must be signed with its pinned key {fingerprint(pinned)}, "
            f"not {str(signature.get('key_id'))[:80]}"
        )
    received_signature.set(dict(signature))
    remote_pin_key(url=caller.identity, public_key=public_key)
    audit_record(
        operation="key_rotation",
        direction="incoming",
        local_repo=identity.local_url(),
        remote_repo=caller.identity,
        status="success",
        payload={"old_key_id": fingerprint(pinned), "new_key_id": fingerprint(public_key)},
    )
    return {"type": "key_rotation_response", "status": "pinned", "key_id": fingerprint(public_key)}


def _pinned_key(caller: Caller) -> str:
    from remotes.signatures import SignatureProblem

    if caller.remote is None:
        raise PermissionDenied("an anonymous caller has no key to rotate: present your API key")
    cfg = node.config()
    declared, _ = cfg.remote_index(caller.identity) if cfg else (None, None)
    pinned = declared.public_key if declared else None
    if not pinned:
        raise SignatureProblem(f"no key is pinned for {caller} here: a new one cannot be announced, only pinned by us")
    return pinned


def node_key_rotate(*, actor: str) -> dict:
    """Make this node a new signing key: announce it to every remote with an endpoint, signed with the old key,
    then keep it (secrets.env, local_identity.public_key). Returns {"key_id": new fingerprint, "old_key_id",
    "told": [remote urls that pinned it], "failed": [{"url", "error"}]}: a remote that failed must be told by
    hand (`sudocode-fed remote key <us> --pin <new key>` on that node)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from federation_site.keys import SIGNING_KEY_ENV, NodeKey, ensure_node_key, private_key_text
    from remotes.client import RemoteError
    from remotes.sync import audited_call, client_for

    lay = node.layout()
    old, _ = ensure_node_key(lay.secrets_path, lay.config_path)
    new = NodeKey(Ed25519PrivateKey.generate())
    message = {"type": "key_rotation", "from": identity.local_url(), "public_key": new.public_key}
    told, failed = [], []
    for remote in RemoteRepo.objects.exclude(rest_endpoint="").order_by("url"):
        try:
            audited_call(
                remote,
                "key_rotation",
                lambda remote=remote: client_for(remote, "key_rotation").post(
                    "/federation/key", {**message, "to": remote.url}
                ),
                payload={"old_key_id": old.key_id, "new_key_id": new.key_id},
            )
            told.append(remote.url)
        except (RemoteError, ValueError) as exc:
            failed.append({"url": remote.url, "error": str(exc)})
    set_secret(lay.secrets_path, SIGNING_KEY_ENV, private_key_text(new.private_key))
    ensure_node_key(lay.secrets_path, lay.config_path)  # the config's public key follows the secret
    logger.info("%s rotated this node's signing key %s -> %s", actor, old.key_id, new.key_id)
    return {"key_id": new.key_id, "old_key_id": old.key_id, "told": told, "failed": failed}


# --- telling the live pages -------------------------------------------------------------------------------

REFERENCE_EVENT = "reference_updated"


def reference_state(ref: CrossRepoReference) -> dict[str, Any]:
    """What a live page shows of a cached reference: its cached data and how the last fetch went."""
    return {"cached": ref.cached_data, "fetch_status": ref.fetch_status}


def references_announce(*, changes: dict[str, dict[str, dict[str, Any]]]) -> int:
    """One `reference_updated` event (local scope: this node's staff, the live pages) per local entity whose
    cached cross-repo references changed, so a page showing the entity follows its remote blockers (issue 14).
    `changes`: {local uuid: {canonical ref: {"from": reference_state before, "to": after}}}. Joins the caller's
    transaction (or opens one). Returns how many events were written."""
    from events.services import record_local

    changes = {uuid_: refs for uuid_, refs in changes.items() if refs}
    if not changes:
        return 0
    holders = {e.uuid: e for e in Entity.objects.filter(uuid__in=list(changes)).only("uuid", "kind", "sudocode_id")}
    written = 0
    with transaction.atomic():
        for local_uuid, refs in changes.items():
            entity = holders.get(local_uuid)
            if entity is None:
                continue
            state = {"id": entity.sudocode_id, "uuid": entity.uuid, "kind": entity.kind}
            record_local(
                type=REFERENCE_EVENT,
                kind=entity.kind,
                uuid_=entity.uuid,
                id_=entity.sudocode_id,
                changes={f"cross_repo.{ref}": change for ref, change in refs.items()},
                state=state,
            )
            written += 1
    return written
