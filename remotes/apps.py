from django.apps import AppConfig


class RemotesConfig(AppConfig):
    """Known remote repositories and cached cross-repo references (remote_repos, cross_repo_references)."""

    name = "remotes"

    def ready(self) -> None:
        from federation_site.signals import node_state_check

        node_state_check.connect(_reconcile_declared_remotes, dispatch_uid="remotes.reconcile_declared_remotes")
        from django.core.signals import request_started

        # A verified signature belongs to one request: forgotten when the next one starts (remotes.auth).
        request_started.connect(_forget_signature, dispatch_uid="remotes.forget_signature")


def _forget_signature(sender, **kwargs) -> None:
    from audit.services import received_signature

    received_signature.set(None)


def _reconcile_declared_remotes(sender, **kwargs) -> None:
    from remotes.services import remotes_reconcile

    remotes_reconcile()
