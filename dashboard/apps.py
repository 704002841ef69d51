from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The pages (approval queue, issues and specs with their cross-repo state, subscriptions, remotes, audit) and
    the REST API over this repository's issues and specs: an edge that composes every layer below; no tables."""

    name = "dashboard"
