from django.apps import AppConfig


class RemotesConfig(AppConfig):
    """Known remote repositories and cached cross-repo references (remote_repos, cross_repo_references)."""

    name = "remotes"

    def ready(self) -> None:
        from federation_site.signals import node_state_check

        node_state_check.connect(_reconcile_declared_remotes, dispatch_uid="remotes.reconcile_declared_remotes")


def _reconcile_declared_remotes(sender, **kwargs) -> None:
    from remotes.services import remotes_reconcile

    remotes_reconcile()
