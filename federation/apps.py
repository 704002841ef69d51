from django.apps import AppConfig


class FederationConfig(AppConfig):
    """The A2A wire format (messages.py) and the federation endpoints; no tables of its own."""

    name = "federation"
