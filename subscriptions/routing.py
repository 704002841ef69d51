"""WebSocket routes (federation_site.asgi mounts them behind the session and auth middleware)."""

from django.urls import path

from subscriptions.consumers import EventsConsumer

websocket_urlpatterns = [path("api/v1/ws", EventsConsumer.as_asgi())]
