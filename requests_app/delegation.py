"""Delegation (the seed's `delegate` / `delegate_response`, Use Case 2): a task handed to another repository,
which accepts it as a spec or issue of its own. A delegation is a cross-repo request of type `delegate`: it is
recorded, decided by the same policy (requests_app.policy) and approved ("accepted") or rejected like a
mutation; this module holds what is particular to it.

Provenance: the task carries `context.chain`, the canonical refs it passed through (the delegator's entity
last), and `context.hop_limit`. A node refuses a delegation whose chain already passes through itself (a cycle)
or is longer than its hop limit; re-delegating an entity appends that entity to its chain. Both ends are linked:
the new entity records `delegated_from` (a JSONL extension field, like the seed's `remote_relationships`) and a
`delegated-from` remote relationship; the delegator's entity gets a `delegated-to` remote relationship.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError

from federation_site import identity, node
from remotes.policy import PermissionDenied
from remotes.services import kind_of_id
from tracker.models import Entity
from tracker.selectors import entity_get

# protocol.messages is imported where it is used: its pydantic models cost ~100 ms, which `issue show` (provenance)
# must not pay (issue 16).

DELEGATED_FROM = "delegated_from"  # the JSONL extension field on an entity created by accepting a delegation


def _own_hop_limit() -> int:
    """`a2a_policies.delegate.hop_limit` of this node's config (the default when it has none)."""
    from protocol import messages

    cfg = node.config()
    return cfg.a2a_policies.delegate.hop_limit if cfg is not None else messages.DEFAULT_HOP_LIMIT


def chain_check(task: dict[str, Any]) -> None:
    """Refuse a delegation that came back to this repository or passed through too many hands: more than the
    lower of its `context.hop_limit` and this node's `a2a_policies.delegate.hop_limit`.
    Raises PermissionDenied naming the chain."""
    from protocol import messages

    context = task.get("context") or {}
    chain = list(context.get("chain") or [])
    limit = int(context.get("hop_limit") or messages.DEFAULT_HOP_LIMIT)
    own = _own_hop_limit()
    if own < limit:  # this node's own limit caps what the delegator allowed
        limit = own
    here = identity.repo_path(identity.local_url())
    shown = " -> ".join(chain)
    mine = [ref for ref in chain if ref.partition("#")[0] == here]
    if mine:
        raise PermissionDenied(
            f"delegation refused: its chain {shown} already passes through this repository ({mine[0]}): a cycle"
        )
    if len(chain) > limit:
        raise PermissionDenied(
            f"delegation refused: its chain {shown} has {len(chain)} hops, more than its hop_limit {limit}"
        )


def task_for(
    *,
    kind: str,
    title: str,
    description: str | None = None,
    requirements: dict | None = None,
    context: dict | None = None,
    origin: str | None = None,
    hop_limit: int | None = None,
    priority: int | None = None,
    labels: list[str] | None = None,
) -> dict[str, Any]:
    """The `task` of a delegate message. `origin`: the local spec or issue the task comes from; the chain is
    its own chain (when it was itself delegated to us) plus its canonical ref. `hop_limit`: given, else the
    origin's own (inherited from its delegator), else this node's `a2a_policies.delegate.hop_limit`.
    `priority` and `labels`: the new entity's. Raises ValidationError."""
    _check_context(kind, title, context or {})
    context = dict(context or {})
    chain = list(context.get("chain") or [])
    if origin:
        try:
            entity = entity_get(kind=None, ref=origin)
        except Entity.DoesNotExist as exc:
            raise ValidationError({"from": str(exc)}) from None
        upstream = provenance(entity) or {}
        ref = identity.canonical_ref(entity.sudocode_id)
        chain = [*(upstream.get("chain") or []), ref]
        context.setdefault("triggered_by", ref)
        if hop_limit is None and upstream.get("hop_limit"):
            hop_limit = upstream["hop_limit"]
    context["chain"] = chain
    context["hop_limit"] = hop_limit if hop_limit is not None else context.get("hop_limit") or _own_hop_limit()
    task = {
        "type": kind,
        "title": title,
        "description": description,
        "priority": priority,
        "labels": labels or None,
        "requirements": requirements or {},
        "context": context,
    }
    if len(chain) > context["hop_limit"]:
        raise ValidationError(
            {"from": f"{origin} has come through {len(chain) - 1} delegations; its hop_limit is {context['hop_limit']}"}
        )
    return {k: v for k, v in task.items() if v is not None}


def _check_context(kind: str, title: str, context: dict[str, Any]) -> None:
    """The task's context as the wire takes it (chain of canonical refs, hop_limit 1-20), before it is used:
    ValidationError at `context.<key>`."""
    from protocol import messages

    probe = {
        "type": "delegate",
        "from": "example.org/probe",
        "task": {"type": kind, "title": title, "context": context},
        "metadata": {"request_id": "probe"},
    }
    try:
        messages.parse_message(probe)
    except messages.MessageError as exc:
        first = exc.errors[0]
        raise ValidationError({first["path"].removeprefix("task.") or "task": first["message"]}) from None


def created_fields(request, actor: str) -> dict[str, Any]:
    """What accepting `request` (an incoming delegation) writes on the new entity, as keywords of
    tracker.services.issue_create / spec_create."""
    from protocol import messages

    task = request.data
    context = task.get("context") or {}
    triggered = context.get("triggered_by") or (context.get("chain") or [None])[-1]
    provenance = {
        "repo": request.from_repo,
        "canonical_ref": triggered,
        "request_id": request.request_id,
        "requester": request.requester or None,
        "chain": list(context.get("chain") or []),
        "hop_limit": context.get("hop_limit") or messages.DEFAULT_HOP_LIMIT,
        "requirements": task.get("requirements") or {},
        "context": {k: v for k, v in context.items() if k not in ("chain", "hop_limit", "triggered_by")},
    }
    relationships = []
    if triggered:
        remote_id = triggered.partition("#")[2]
        relationships.append(
            {
                "type": "delegated-from",
                "remote_repo": request.from_repo,
                "remote_entity_type": kind_of_id(remote_id),
                "remote_id": remote_id,
                "canonical_ref": triggered,
            }
        )
    return {
        "title": task["title"],
        "content": _content(task),
        "priority": 2 if task.get("priority") is None else task["priority"],
        "tags": task.get("labels") or [],
        "actor": actor,
        "remote_relationships": relationships,
        "extensions": {DELEGATED_FROM: {k: v for k, v in provenance.items() if v not in (None, {}, [])}},
        "from_remote": True,
    }


def _content(task: dict[str, Any]) -> str:
    text = task.get("description") or ""
    if task.get("requirements"):
        block = json.dumps(task["requirements"], indent=2, ensure_ascii=False)
        text = f"{text}\n\n## Requirements\n\n```json\n{block}\n```\n".lstrip()
    return text


def origin_link(request, created: dict[str, Any]) -> tuple[Entity, dict] | None:
    """The delegator's entity (ours, the task's `triggered_by`) and the `delegated-to` relationship it gets
    once the delegate accepted; None when the task came from no entity of ours."""
    context = request.data.get("context") or {}
    triggered = context.get("triggered_by") or ""
    repo_path, _, local_id = triggered.partition("#")
    if repo_path != identity.repo_path(request.from_repo) or not local_id:
        return None
    try:
        entity = entity_get(kind=None, ref=local_id)
    except Entity.DoesNotExist:
        return None
    return entity, {
        "type": "delegated-to",
        "remote_repo": request.to_repo,
        "remote_entity_type": created.get("type"),
        "remote_id": created["id"],
        "remote_uuid": created.get("uuid"),
        "canonical_ref": created["canonical_ref"],
    }


def provenance(entity: Entity) -> dict[str, Any] | None:
    """An entity's `delegated_from` record (who delegated it, the chain, requirements), or None."""
    return _record(entity).get(DELEGATED_FROM) or None


def _record(entity: Entity) -> dict[str, Any]:
    try:
        record = json.loads(entity.raw)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}
