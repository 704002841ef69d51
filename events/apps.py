from django.apps import AppConfig


class EventsConfig(AppConfig):
    """The outbox: every change to this repository's issues and specs (and to its requests), numbered."""

    name = "events"
