"""Read API over the repository's own issues and specs: /api/v1/issues and /api/v1/specs. A detail shows the
entity with its cross-repo state (`remotes.sync.entity_detail_with_cross_repo`), the shape `issue show` prints."""

from django.http import Http404
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dashboard import health
from dashboard.access import PublicReadOrStaff, StaffOnly
from remotes.graph import MAX_DEPTH, GraphError, dependency_graph
from remotes.sync import entity_detail_with_cross_repo
from tracker.filters import EntityFilter
from tracker.models import Entity, EntityKind
from tracker.selectors import entity_get, entity_list, entity_summary


class EdgeSerializer(serializers.Serializer):
    type = serializers.CharField()
    id = serializers.CharField()
    kind = serializers.CharField()
    title = serializers.CharField(allow_null=True)
    status = serializers.CharField(allow_null=True)
    exists = serializers.BooleanField()


class EntitySummarySerializer(serializers.Serializer):
    """Documents the shape of `entity_summary`; the selector builds it."""

    id = serializers.CharField()
    uuid = serializers.CharField()
    kind = serializers.ChoiceField(choices=EntityKind.choices)
    title = serializers.CharField()
    status = serializers.CharField(required=False, help_text="issues only")
    file_path = serializers.CharField(required=False, help_text="specs only")
    priority = serializers.IntegerField()
    tags = serializers.ListField(child=serializers.CharField())
    archived = serializers.BooleanField()
    created_at = serializers.CharField()
    updated_at = serializers.CharField()

    def to_representation(self, instance):
        return entity_summary(instance)


class EntityDetailSerializer(EntitySummarySerializer):
    content = serializers.CharField()
    record = serializers.DictField(help_text="the entity's line of the JSONL file, as stored")
    relationships = EdgeSerializer(many=True)
    incoming_relationships = EdgeSerializer(many=True)
    blocked_by = EdgeSerializer(many=True)
    references = serializers.ListField(child=serializers.DictField())

    cross_repo = serializers.ListField(
        child=serializers.DictField(), help_text="references to other repositories, with cached state and freshness"
    )

    def to_representation(self, instance):
        return entity_detail_with_cross_repo(entity=instance)


class _EntityList(generics.ListAPIView):
    kind: str
    permission_classes = [PublicReadOrStaff]  # as the pages: staff, or anyone with web.public_read
    serializer_class = EntitySummarySerializer
    filterset_class = EntityFilter

    def get_queryset(self):
        return entity_list(kind=self.kind, archived=None)


class _EntityDetail(generics.RetrieveAPIView):
    kind: str
    permission_classes = [PublicReadOrStaff]
    serializer_class = EntityDetailSerializer

    def get_object(self):
        try:
            return entity_get(kind=self.kind, ref=self.kwargs["ref"])
        except Entity.DoesNotExist as exc:
            raise Http404(str(exc)) from None


@extend_schema(tags=["issues"])
class IssueListApi(_EntityList):
    kind = EntityKind.ISSUE


@extend_schema(tags=["issues"])
class IssueDetailApi(_EntityDetail):
    kind = EntityKind.ISSUE


@extend_schema(tags=["specs"])
class SpecListApi(_EntityList):
    kind = EntityKind.SPEC


@extend_schema(tags=["specs"])
class SpecDetailApi(_EntityDetail):
    kind = EntityKind.SPEC


class GraphQuerySerializer(serializers.Serializer):
    root = serializers.CharField(required=False, max_length=500, help_text="an id, uuid or org/repo#id")
    depth = serializers.IntegerField(required=False, min_value=0, max_value=MAX_DEPTH, help_text="edges (default 10)")
    cross_repo = serializers.BooleanField(required=False, default=False, help_text="expand remote nodes")


class GraphApi(APIView):
    """GET /api/v1/graph: the dependency graph (`remotes.graph.dependency_graph`), the shape `deps graph --format
    json` prints and the /graph/ page draws. A bad parameter is a 400 naming it. Staff only, as /graph/: it
    shows the remotes and what they answered."""

    permission_classes = [StaffOnly]

    @extend_schema(
        tags=["issues"],
        summary="The dependency graph across repositories",
        parameters=[GraphQuerySerializer],
        responses={200: dict, 400: dict},
    )
    def get(self, request: Request) -> Response:
        params = GraphQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        try:
            graph = dependency_graph(
                root=params.validated_data.get("root"),
                depth=params.validated_data.get("depth"),
                cross_repo=params.validated_data["cross_repo"],
            )
        except GraphError as exc:
            return Response({exc.field: [str(exc)]}, status=400)
        return Response(graph)


class HealthApi(APIView):
    """GET /api/v1/health: 200 `{"status": "ok", ...}` when the node can do its work, else 503 `{"status":
    "degraded", "problems": [...]}`: the checks of `dashboard.health` (the database, the broker, its background
    worker: callbacks, notifications and webhooks wait; a JSONL file that cannot be read: writes wait; the last
    edit of federation.config.json refused: the last good config goes on). For monitoring; no authentication.
    `GET /health/ready` is the same answer at the address load balancers and orchestrators expect."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(tags=["operations"], summary="Is this node able to do its work?", responses={200: dict, 503: dict})
    def get(self, request: Request) -> Response:
        body = health.readiness()
        return Response(body, status=503 if body["problems"] else 200)


class ReadinessApi(HealthApi):
    """GET /health/ready: whether to send this node traffic. The answer of /api/v1/health (`dashboard.health`):
    200 when every check is ok, else 503 with `checks` (each reason) and `problems`."""

    @extend_schema(
        tags=["operations"],
        summary="Readiness: database, broker, worker heartbeat, JSONL importable, config valid (503 with reasons)",
        responses={200: dict, 503: dict},
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


class LivenessApi(APIView):
    """GET /health: 200 `{"status": "ok"}` whenever the process answers HTTP. Nothing else is looked at (no
    database): restart the process only when this fails; /health/ready says whether to send it traffic."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(tags=["operations"], summary="Liveness: the process answers", responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


urlpatterns = [
    path("health", HealthApi.as_view(), name="api-health"),
    path("graph", GraphApi.as_view(), name="api-graph"),
    path("issues", IssueListApi.as_view(), name="api-issue-list"),
    path("issues/<str:ref>", IssueDetailApi.as_view(), name="api-issue-detail"),
    path("specs", SpecListApi.as_view(), name="api-spec-list"),
    path("specs/<str:ref>", SpecDetailApi.as_view(), name="api-spec-detail"),
]
