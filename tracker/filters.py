import django_filters
from django import forms

from tracker.models import Entity, IssueStatus

PRIORITIES = range(0, 5)


class StatusInFilter(django_filters.BaseInFilter, django_filters.ChoiceFilter):
    pass


class PriorityInFilter(django_filters.BaseInFilter, django_filters.NumberFilter):
    # Whole numbers in range: a decimal would silently match its integer part, and a huge number overflows
    # the database's integer (a 500 instead of a 400).
    field_class = forms.IntegerField


class StrictBooleanField(forms.NullBooleanField):
    """`true`/`false` (or `1`/`0`); anything else is an error, not a silently ignored filter."""

    widget = forms.TextInput
    _VALUES = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return self._VALUES[str(value).strip().lower()]
        except KeyError:
            raise forms.ValidationError("Enter true or false.", code="invalid") from None


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class EntityFilter(django_filters.FilterSet):
    """`?status=open,blocked&priority=0,1&tags=api,auth` (tags: all must match), `?archived=true`.
    A value that is not one of the allowed ones is a 400 naming the parameter, never an empty page."""

    status = StatusInFilter(field_name="status", choices=IssueStatus.choices, help_text="one or more, comma-separated")
    priority = PriorityInFilter(
        field_name="priority", min_value=PRIORITIES.start, max_value=PRIORITIES.stop - 1, help_text="one or more of 0-4"
    )
    tags = django_filters.CharFilter(method="filter_tags", help_text="comma-separated; entities with all of them")
    archived = StrictBooleanFilter(field_name="archived", help_text="true or false")

    class Meta:
        model = Entity
        fields = ["status", "priority", "tags", "archived"]

    def filter_tags(self, queryset, name, value):
        for tag in [t.strip() for t in value.split(",") if t.strip()]:
            queryset = queryset.filter(tags__name=tag)
        return queryset.distinct()
