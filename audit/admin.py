from django.contrib import admin

from audit.models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    """Append-only: the log is written by services and never edited."""

    list_display = ["timestamp", "direction", "operation_type", "remote_repo", "status", "duration_ms"]
    list_filter = ["direction", "operation_type", "status"]
    search_fields = ["remote_repo", "request_id", "correlation_id"]
    date_hierarchy = "timestamp"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
