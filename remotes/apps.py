from django.apps import AppConfig


class RemotesConfig(AppConfig):
    """Known remote repositories and cached cross-repo references (remote_repos, cross_repo_references)."""

    name = "remotes"
