from django.apps import AppConfig


class RequestsAppConfig(AppConfig):
    """Cross-repo mutation requests and their approval (cross_repo_requests)."""

    name = "requests_app"
    verbose_name = "Requests"
