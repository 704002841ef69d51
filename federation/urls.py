from django.urls import path

from federation import apis, audit_apis, metrics_apis
from remotes import apis as remote_apis
from requests_app import apis as request_apis

urlpatterns = [
    path("info", apis.InfoApi.as_view(), name="federation-info"),
    path("directory", apis.DirectoryApi.as_view(), name="federation-directory"),
    path("key", apis.KeyRotationApi.as_view(), name="federation-key"),
    path("query", apis.QueryApi.as_view(), name="federation-query"),
    path("mutate", apis.MutateApi.as_view(), name="federation-mutate"),
    path("delegate", apis.DelegateApi.as_view(), name="federation-delegate"),
    path("a2a", apis.A2AApi.as_view(), name="federation-a2a"),
    path("audit", audit_apis.AuditApi.as_view(), name="federation-audit"),
    path("audit/stats", audit_apis.AuditStatsApi.as_view(), name="federation-audit-stats"),
    path("metrics/series", metrics_apis.MetricsSeriesApi.as_view(), name="federation-metrics-series"),
    path("remotes", remote_apis.RemotesApi.as_view(), name="federation-remotes"),
    path("remotes/<path:identity>", remote_apis.RemoteApi.as_view(), name="federation-remote"),
    path("callback", request_apis.CallbackApi.as_view(), name="federation-callback"),
    path("requests", request_apis.RequestListApi.as_view(), name="federation-requests"),
    path("requests/<str:request_id>", request_apis.RequestStatusApi.as_view(), name="federation-request"),
    path("requests/<str:request_id>/approve", request_apis.ApproveApi.as_view(), name="federation-request-approve"),
    path("requests/<str:request_id>/reject", request_apis.RejectApi.as_view(), name="federation-request-reject"),
    path("subscribe", apis.SubscribeApi.as_view(), name="federation-subscribe"),
    path(
        "subscribe/<str:subscription_id>",
        apis.SubscriptionApi.as_view(),
        name="federation-subscription",
    ),
    path("events", apis.EventsApi.as_view(), name="federation-events"),
    path("schema", apis.SchemaApi.as_view(), name="federation-schema"),
]
