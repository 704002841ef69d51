from django.contrib import admin, messages

from subscriptions import delivery
from subscriptions.models import ReceivedEvent, Subscription


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Read-only: subscriptions change through their services (subscribe, cancel, redeliver). The HMAC secret
    and the subscriber's bearer token are never shown."""

    list_display = [
        "subscription_id",
        "direction",
        "from_repo",
        "to_repo",
        "status",
        "delivery_status",
        "cursor_seq",
        "last_seq",
        "attempts",
        "next_attempt_at",
    ]
    list_filter = ["direction", "status", "delivery_status", "auto"]
    search_fields = ["subscription_id", "from_repo", "to_repo", "callback_url"]
    exclude = ["secret", "callback_auth"]
    readonly_fields = ["callback_auth_type"]
    actions = ["redeliver"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="callback auth")
    def callback_auth_type(self, obj: Subscription) -> str:
        return (obj.callback_auth or {}).get("type", "none") if obj.callback_auth else "none"

    @admin.action(description="Redeliver the selected dead incoming subscriptions")
    def redeliver(self, request, queryset):
        revived = sum(delivery.redeliver(row.subscription_id) for row in queryset)
        self.message_user(request, f"{revived} queued again.", messages.SUCCESS)


@admin.register(ReceivedEvent)
class ReceivedEventAdmin(admin.ModelAdmin):
    list_display = ["event_id", "subscription", "from_repo", "seq", "received_at"]
    list_filter = ["from_repo"]
    search_fields = ["event_id", "from_repo"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
