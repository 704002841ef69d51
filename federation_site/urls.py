"""The composition root: every edge mounted at its address. The one module (with asgi.py) of federation_site
that imports the apps above it; the layers contract lets it (pyproject.toml, [tool.importlinter])."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic.base import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from dashboard.apis import LivenessApi, ReadinessApi
from dashboard.metrics import metrics_view
from subscriptions.apis import CrossRepoWebhookApi

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/federation/", include("federation.urls")),
    path("api/v1/webhooks/cross-repo", CrossRepoWebhookApi.as_view(), name="webhook-cross-repo"),
    path("api/v1/", include("dashboard.apis")),
    path("metrics", metrics_view, name="metrics"),
    path("health", LivenessApi.as_view(), name="health"),
    path("health/ready", ReadinessApi.as_view(), name="health-ready"),
    # Browsers ask for /favicon.ico on pages that do not name one (the admin's, say).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("", include("dashboard.urls")),
]
