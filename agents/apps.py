from django.apps import AppConfig


class AgentsConfig(AppConfig):
    """The agents' doors: MCP (agents.mcp_server) and A2A 1.0 (agents.a2a_server). No tables: an A2A task is
    its request row."""

    name = "agents"
    verbose_name = "Agents (MCP, A2A)"

    def ready(self) -> None:
        from requests_app import signals

        signals.request_changed.connect(_push, dispatch_uid="agents.a2a_push")


def _push(sender, request, status_from: str, **kwargs) -> None:
    if not (request.a2a or {}).get("push"):
        return  # the common case: the A2A SDK is not loaded for it
    from agents.a2a_server import queue_push_notifications

    queue_push_notifications(sender, request=request, status_from=status_from)
