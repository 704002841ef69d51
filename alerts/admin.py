from django.contrib import admin

from alerts.models import Alert, AlertDelivery


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("kind", "subject", "status", "value", "threshold", "fired_at", "resolved_at")
    list_filter = ("kind", "status")
    readonly_fields = [f.name for f in Alert._meta.fields]


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(admin.ModelAdmin):
    list_display = ("alert", "state", "kind", "target", "status", "attempts", "next_attempt_at")
    list_filter = ("status", "kind", "state")
