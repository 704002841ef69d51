"""Admins set trust levels and permissions here. Every save goes through remotes.services, which writes
federation.config.json (so git records the decision) and then the database."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from federation_site import node
from federation_site.config import ConfigError
from remotes import services
from remotes.models import CrossRepoReference, RemoteRepo


class RemoteRepoForm(forms.ModelForm):
    permissions = forms.JSONField(
        required=False,
        help_text="permissions.query / mutate / subscribe as in federation.config.json, e.g. "
        '{"query": {"allowed": true, "exclude_fields": ["assignee"]}}',
    )

    class Meta:
        model = RemoteRepo
        fields = ["url", "display_name", "trust_level", "rest_endpoint"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance and self.instance.pk:
            self.fields["url"].disabled = True
            cfg = node.config()
            declared = cfg.remote(self.instance.url) if cfg else None
            if declared is not None:
                self.initial["permissions"] = declared.permissions.model_dump(exclude_defaults=True)


@admin.register(RemoteRepo)
class RemoteRepoAdmin(admin.ModelAdmin):
    form = RemoteRepoForm
    list_display = ["url", "display_name", "trust_level", "sync_status", "last_synced_at", "rest_endpoint"]
    list_filter = ["trust_level", "sync_status"]
    search_fields = ["url", "display_name"]
    readonly_fields = ["sync_status", "last_synced_at", "last_error", "capabilities", "added_at", "added_by"]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        endpoint = data.get("rest_endpoint") or None
        try:
            if change:
                services.remote_update(
                    remote=obj,
                    trust_level=data["trust_level"],
                    display_name=data["display_name"],
                    endpoint=endpoint,
                    permissions=data.get("permissions") or None,
                )
            else:
                remote, key = services.remote_add(
                    url=data["url"],
                    actor=request.user.get_username(),
                    trust_level=data["trust_level"],
                    endpoint=endpoint,
                    display_name=data["display_name"],
                )
                if data.get("permissions"):
                    services.remote_update(remote=remote, permissions=data["permissions"])
                self.message_user(
                    request, f"API key for {remote.url} (shown once; give it to that node): {key}", messages.WARNING
                )
        except (ValidationError, ConfigError) as exc:
            self.message_user(request, f"Not saved: {exc}", messages.ERROR)

    def delete_model(self, request, obj):
        services.remote_remove(remote=obj)

    def delete_queryset(self, request, queryset):
        for remote in queryset:
            services.remote_remove(remote=remote)


@admin.register(CrossRepoReference)
class CrossRepoReferenceAdmin(admin.ModelAdmin):
    list_display = ["canonical_ref", "relationship_type", "local_uuid", "fetch_status", "last_fetched_at"]
    list_filter = ["fetch_status", "relationship_type", "repo"]
    search_fields = ["canonical_ref", "local_uuid"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
