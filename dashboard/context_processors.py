from django.http import HttpRequest

from federation_site import node, workers
from tracker.doctor import merge_decisions
from tracker.sync import data_problems


def data_problems_banner(request: HttpRequest) -> dict:
    """What base.html shows a banner for: `data_problems`, the JSONL files that cannot be imported; and, for
    staff, `worker_down`, the worker state when `serve`'s background worker is not alive,
    `merge_decisions`, what the JSONL merge driver decided and a human should check, and `config_problem`,
    an edit of federation.config.json that was refused (the last good config is in force)."""
    context = {"data_problems": [p.short for p in data_problems()]}
    user = getattr(request, "user", None)
    if user is not None and user.is_staff:
        try:
            state = workers.worker_state(node.layout())
        except node.RepoNotFound:
            state = None
        problem = node.config_problem()
        context["config_problem"] = str(problem) if problem else None
        context["worker_down"] = state if state and state["expected"] and not state["alive"] else None
        try:
            context["merge_decisions"] = [str(p) for p in merge_decisions(node.layout().sudocode_dir)]
        except node.RepoNotFound:
            pass
    return context


def alerts_banner(request: HttpRequest) -> dict:
    """`alerts`, the seed's alerts firing now (alerts.selectors), for the banner base.html shows staff on every
    page: one indexed query, staff only (it names remotes and their errors)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_staff:
        return {}
    from alerts.selectors import alerts_firing

    return {"alerts": alerts_firing()}
