"""The filters every page uses to show content, references and moments the same way: `{% load pages %}`.

- `{{ text|markdown }}`, `{{ text|markdown:repo }}`: dashboard.markup.render_markdown (sanitised Markdown, refs
  linked with a status chip; `repo`: the repository the text was written in when it is another one).
- `{{ moment|when }}`: `<time datetime="ISO">` with the exact UTC time as its text and tooltip; static/js/time.js
  rewrites it in the viewer's browser to a relative time ("3 minutes ago") with the exact time, in the viewer's
  time zone, in the tooltip. Accepts a datetime or an ISO 8601 string; "" for None.
- `{{ row.waiting|duration }}`: a timedelta as "under a minute", "5 minutes", "2 hours 10 minutes", "3 days".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.safestring import SafeString

from dashboard.markup import render_markdown

register = template.Library()


@register.filter
def markdown(text: str | None, base_repo: str | None = None) -> SafeString:
    return render_markdown(text, base_repo=base_repo or None)


@register.filter
def when(moment: datetime | str | None) -> SafeString | str:
    if isinstance(moment, str):
        try:
            moment = parse_datetime(moment)
        except ValueError:
            return moment
    if not isinstance(moment, datetime):
        return ""
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    moment = moment.astimezone(UTC)
    exact = moment.strftime("%Y-%m-%d %H:%M UTC")
    return format_html('<time datetime="{0}" title="{1}">{1}</time>', moment.isoformat(timespec="seconds"), exact)


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"


@register.filter
def duration(delta: timedelta | None) -> str:
    if not isinstance(delta, timedelta):
        return ""
    minutes = max(int(delta.total_seconds() // 60), 0)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return _plural(minutes, "minute")
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return _plural(hours, "hour") + (f" {_plural(minutes, 'minute')}" if minutes else "")
    return _plural(hours // 24, "day")


@register.simple_tag(takes_context=True)
def page_link(context, param: str, number: int) -> str:
    """`?…&{param}={number}`: the current query (the list's filters) with one page number changed."""
    query = context["request"].GET.copy()
    query[param] = str(number)
    return f"?{query.urlencode()}"
