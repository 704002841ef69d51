from django.urls import path

from requests_app import views

app_name = "requests_app"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("deliveries/<int:delivery_id>/redeliver", views.redeliver, name="redeliver"),
    path("<str:request_id>", views.detail, name="detail"),
    path("<str:request_id>/approve", views.approve, name="approve"),
    path("<str:request_id>/reject", views.reject, name="reject"),
]
