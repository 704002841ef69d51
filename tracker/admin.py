from django.contrib import admin

from tracker.models import Entity, JsonlFile, Relationship, Tag


class TagInline(admin.TabularInline):
    model = Tag
    extra = 0
    readonly_fields = ["position", "name"]
    can_delete = False


class RelationshipInline(admin.TabularInline):
    model = Relationship
    extra = 0
    readonly_fields = ["position", "type", "to_id", "to_type"]
    fields = readonly_fields
    can_delete = False


@admin.register(Entity)
class EntityAdmin(admin.ModelAdmin):
    """Read-only: the JSONL files are the truth; change entities with the CLI, the API or sudocode itself."""

    list_display = ["sudocode_id", "kind", "title", "status", "priority", "archived", "updated_at"]
    list_filter = ["kind", "status", "priority", "archived"]
    search_fields = ["sudocode_id", "uuid", "title"]
    inlines = [TagInline, RelationshipInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(JsonlFile)
class JsonlFileAdmin(admin.ModelAdmin):
    list_display = ["kind", "size", "sha256", "imported_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
