import django_filters

from tracker.models import Entity, IssueStatus


class CommaInFilter(django_filters.BaseInFilter, django_filters.CharFilter):
    pass


class NumberInFilter(django_filters.BaseInFilter, django_filters.NumberFilter):
    pass


class EntityFilter(django_filters.FilterSet):
    """`?status=open,blocked&priority=0,1&tags=api,auth` (tags: all must match), `?archived=true`."""

    status = CommaInFilter(field_name="status", help_text=f"one or more of {', '.join(IssueStatus.values)}")
    priority = NumberInFilter(field_name="priority", help_text="one or more of 0-4")
    tags = django_filters.CharFilter(method="filter_tags", help_text="comma-separated; entities with all of them")
    archived = django_filters.BooleanFilter(field_name="archived")

    class Meta:
        model = Entity
        fields = ["status", "priority", "tags", "archived"]

    def filter_tags(self, queryset, name, value):
        for tag in [t.strip() for t in value.split(",") if t.strip()]:
            queryset = queryset.filter(tags__name=tag)
        return queryset.distinct()
