from django.contrib import admin, messages

from requests_app import delivery, services
from requests_app.models import CrossRepoRequest, Delivery


@admin.register(CrossRepoRequest)
class CrossRepoRequestAdmin(admin.ModelAdmin):
    """Requests change state only through requests_app.services (approve, reject): actions here call them."""

    list_display = ["request_id", "direction", "request_type", "from_repo", "to_repo", "status", "created_at"]
    list_filter = ["direction", "status", "request_type"]
    search_fields = ["request_id", "from_repo", "to_repo", "requester"]
    actions = ["approve"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Approve the selected pending incoming requests")
    def approve(self, request, queryset):
        for found in queryset.filter(direction="incoming", status="pending"):
            services.request_approve(request_id=found.request_id, actor=request.user.get_username())
        self.message_user(request, "Approved.", messages.SUCCESS)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["pk", "kind", "event", "target", "status", "attempts", "next_attempt_at", "last_error"]
    list_filter = ["kind", "status", "event"]
    actions = ["redeliver"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Deliver again (dead deliveries)")
    def redeliver(self, request, queryset):
        for row in queryset.filter(status=Delivery.Status.DEAD):
            delivery.redeliver(row.pk)
        self.message_user(request, "Queued again.", messages.SUCCESS)
