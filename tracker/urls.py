from django.urls import path

from tracker import views
from tracker.models import EntityKind

app_name = "tracker"

urlpatterns = [
    path("", views.home, name="home"),
    path("issues/<str:ref>", views.entity_page, {"kind": EntityKind.ISSUE}, name="issue"),
    path("specs/<str:ref>", views.entity_page, {"kind": EntityKind.SPEC}, name="spec"),
]
