from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The append-only log of every cross-repo operation (cross_repo_audit_log)."""

    name = "audit"
