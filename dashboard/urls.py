from django.urls import path

from dashboard import views
from tracker.models import EntityKind

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path("issues/", views.issue_list, name="issues"),
    path("specs/", views.spec_list, name="specs"),
    path("issues/<str:ref>", views.entity_page, {"kind": EntityKind.ISSUE}, name="issue"),
    path("specs/<str:ref>", views.entity_page, {"kind": EntityKind.SPEC}, name="spec"),
    path("approvals/", views.approvals, name="approvals"),
    path("approvals/deliveries/<int:delivery_id>/redeliver", views.delivery_redeliver, name="delivery-redeliver"),
    path("approvals/<str:request_id>", views.request_page, name="request"),
    path("approvals/<str:request_id>/approve", views.request_approve, name="request-approve"),
    path("approvals/<str:request_id>/reject", views.request_reject, name="request-reject"),
    path("subscriptions/", views.subscription_list, name="subscriptions"),
    path("subscriptions/<str:subscription_id>/redeliver", views.subscription_redeliver, name="subscription-redeliver"),
    path("subscriptions/<str:subscription_id>/retry", views.subscription_retry, name="subscription-retry"),
    path("remotes/", views.remote_list, name="remotes"),
    path("graph/", views.graph_page, name="graph"),
    path("audit/", views.audit_page, name="audit"),
    # `/metrics` without the slash is the Prometheus scrape (federation_site/urls.py); this is the page.
    path("metrics/", views.metrics_page, name="metrics"),
]
