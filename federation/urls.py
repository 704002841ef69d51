from django.urls import path

from federation import apis

urlpatterns = [
    path("info", apis.InfoApi.as_view(), name="federation-info"),
    path("query", apis.QueryApi.as_view(), name="federation-query"),
    path("a2a", apis.A2AApi.as_view(), name="federation-a2a"),
    path("schema", apis.SchemaApi.as_view(), name="federation-schema"),
]
