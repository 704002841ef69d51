from django.urls import path

from remotes import views

app_name = "remotes"

urlpatterns = [path("", views.remote_list, name="list")]
