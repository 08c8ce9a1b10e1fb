"""REST views for snapshots: create, list, get, delete, restore, tag, lineage."""

import re

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from mem0web.errors import InvalidRequest
from mem0web.filters import filter_value
from mem0web.pagination import Cursor
from sandboxes import selectors, snapshots
from sandboxes.idempotency import idempotent
from sandboxes.lineage import lineage, org_lineage
from sandboxes.serializers import SandboxSerializer, SnapshotSerializer, sandbox_json

TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


class SnapshotCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False, allow_blank=True)


class SandboxSnapshotsView(APIView):
    scope = "snapshots"

    @extend_schema(request=SnapshotCreateSerializer, responses={201: SnapshotSerializer})
    def post(self, request, sandbox_id: str):
        sandbox = selectors.sandbox_by_id(request.auth.org, sandbox_id)
        data = SnapshotCreateSerializer(data=request.data or {})
        data.is_valid(raise_exception=True)

        def create():
            snap = snapshots.snapshot_create(principal=request.auth, sandbox=sandbox,
                                             name=data.validated_data.get("name", ""), request=request)
            return Response(SnapshotSerializer(snap).data, status=201)

        return idempotent(request, request.auth.org, create)


class SnapshotListView(APIView):
    scope = "snapshots"
    pagination_class = Cursor  # for the schema: a cursor page (get() paginates with it)

    @extend_schema(responses=SnapshotSerializer(many=True),
                   parameters=[OpenApiParameter("sandbox_id", str), OpenApiParameter("tag", str)])
    def get(self, request):
        qs = selectors.snapshots_for_org(request.auth.org)
        if request.query_params.get("sandbox_id"):
            qs = qs.filter(sandbox_id=filter_value("sandbox_id", request.query_params["sandbox_id"]))
        if request.query_params.get("tag"):
            qs = qs.filter(tag_set__name=filter_value("tag", request.query_params["tag"]))
        paginator = Cursor()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(SnapshotSerializer(page, many=True).data)


class SnapshotDetailView(APIView):
    scope = "snapshots"

    @extend_schema(responses=SnapshotSerializer)
    def get(self, request, snapshot_id: str):
        return Response(SnapshotSerializer(selectors.snapshot_by_id(request.auth.org, snapshot_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, snapshot_id: str):
        snap = selectors.snapshot_by_id(request.auth.org, snapshot_id)
        snapshots.snapshot_delete(principal=request.auth, snapshot=snap, request=request)
        return Response(status=204)


class SnapshotRestoreView(APIView):
    scope = "snapshots"

    @extend_schema(request=None, responses={201: SandboxSerializer})
    def post(self, request, snapshot_id: str):
        snap = selectors.snapshot_by_id(request.auth.org, snapshot_id)

        def restore():
            sandbox = snapshots.snapshot_restore(principal=request.auth, snapshot=snap, request=request)
            return Response(sandbox_json(sandbox), status=201)

        return idempotent(request, request.auth.org, restore)


class SnapshotTagView(APIView):
    scope = "snapshots"

    @extend_schema(request=None, responses=SnapshotSerializer,
                   parameters=[OpenApiParameter("tag", str, OpenApiParameter.PATH, pattern=TAG_RE.pattern)])
    def put(self, request, snapshot_id: str, tag: str):
        if not TAG_RE.match(tag):
            raise InvalidRequest("Tags are 1-80 letters, digits, '.', '_' or '-'.", details={"tag": tag[:100]})
        snap = selectors.snapshot_by_id(request.auth.org, snapshot_id)
        snapshots.snapshot_tag(principal=request.auth, snapshot=snap, tag=tag, request=request)
        return Response(SnapshotSerializer(selectors.snapshot_by_id(request.auth.org, snapshot_id)).data)


class LineageDepthSerializer(serializers.Serializer):
    depth = serializers.IntegerField(min_value=1, max_value=1000, required=False,
                                     help_text="Levels to walk from the snapshot (all, up to 2,000 nodes, if absent).")


class SnapshotLineageView(APIView):
    scope = "snapshots"

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, parameters=[LineageDepthSerializer])
    def get(self, request, snapshot_id: str):
        query = LineageDepthSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        snap = selectors.snapshot_by_id(request.auth.org, snapshot_id)
        return Response(lineage(request.auth.org, snap, depth=query.validated_data.get("depth")))


ORG_LINEAGE_MAX = 2000


class LineageQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=ORG_LINEAGE_MAX, required=False, default=500,
                                     help_text="Snapshots per page (the page's sandboxes come with them).")
    before = serializers.CharField(required=False, max_length=64,
                                   help_text="The `next` of the previous page: snapshots older than it.")
    tag = serializers.CharField(required=False, max_length=80, help_text="Only snapshots with this tag.")


class OrgLineageView(APIView):
    """The organisation's lineage graph a page at a time (newest snapshots first); see lineage.org_lineage."""

    scope = "snapshots"

    @extend_schema(operation_id="lineage_page", responses={200: OpenApiTypes.OBJECT},
                   parameters=[LineageQuerySerializer])
    def get(self, request):
        query = LineageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        before = query.validated_data.get("before")
        tag = query.validated_data.get("tag")
        before_snap = selectors.snapshot_by_id(request.auth.org, filter_value("before", before)) if before else None
        return Response(org_lineage(request.auth.org, limit=query.validated_data["limit"], before=before_snap,
                                    tag=filter_value("tag", tag) if tag else None))
