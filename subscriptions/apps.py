from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    """Subscriptions to changes, webhooks and WebSocket events (cross_repo_subscriptions)."""

    name = "subscriptions"
