from django.apps import AppConfig


class FederationConfig(AppConfig):
    """The A2A wire format (messages.py) and the federation endpoints; no tables of its own."""

    name = "federation"

    def ready(self) -> None:
        from django.conf import settings

        if "corsheaders" in settings.INSTALLED_APPS:  # the web profile (the CLI's loads no middleware)
            from corsheaders.signals import check_request_enabled

            from federation.cors import origin_allowed

            check_request_enabled.connect(origin_allowed, dispatch_uid="federation.cors")
