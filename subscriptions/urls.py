from django.urls import path

from subscriptions import views

app_name = "subscriptions"

urlpatterns = [
    path("", views.subscription_list, name="list"),
    path("<str:subscription_id>/redeliver", views.redeliver, name="redeliver"),
]
