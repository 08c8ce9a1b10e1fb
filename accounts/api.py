"""REST views for /api/v1/me, /keys and /audit: validate, call a service or selector, serialize."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.serializers import (
    APIKeyCreatedSerializer,
    APIKeyCreateSerializer,
    APIKeySerializer,
    AuditEventSerializer,
)
from billing.selectors import effective_limits
from mem0web.pagination import Cursor


class MeView(APIView):
    @extend_schema(responses=inline_serializer("Me", {"organization": serializers.DictField()}))
    def get(self, request):
        p = request.auth
        org = p.org
        return Response({
            "organization": {"id": org.pk, "name": org.name, "slug": org.slug, "suspended": org.suspended},
            "plan": {"slug": org.plan.slug, "name": org.plan.name},
            "limits": effective_limits(org),
            "role": p.role,
            "key": {"prefix": p.key.prefix, "name": p.key.name, "scopes": sorted(p.scopes)} if p.key else None,
            "user": getattr(p.user, "username", None),
        })


class KeyListView(APIView):
    scope = "keys"
    pagination_class = Cursor  # for the schema: a cursor page (get() paginates with it)

    @extend_schema(responses=APIKeySerializer(many=True))
    def get(self, request):
        paginator = Cursor()
        page = paginator.paginate_queryset(selectors.keys_for_org(request.auth.org), request, view=self)
        return paginator.get_paginated_response(APIKeySerializer(page, many=True).data)

    @extend_schema(request=APIKeyCreateSerializer, responses={201: APIKeyCreatedSerializer})
    def post(self, request):
        data = APIKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key, raw = services.apikey_create(org=request.auth.org, principal=request.auth, request=request,
                                          **data.validated_data)
        return Response({**APIKeySerializer(key).data, "key": raw}, status=201)


class KeyDetailView(APIView):
    scope = "keys"

    @extend_schema(responses=APIKeySerializer)
    def get(self, request, key_id: str):
        return Response(APIKeySerializer(selectors.key_by_id(request.auth.org, key_id)).data)

    @extend_schema(responses={200: APIKeySerializer})
    def delete(self, request, key_id: str):
        key = selectors.key_by_id(request.auth.org, key_id)
        services.apikey_revoke(key=key, principal=request.auth, request=request)
        return Response(APIKeySerializer(key).data)


class AuditListView(APIView):
    scope = "audit"
    pagination_class = Cursor  # for the schema: a cursor page (get() paginates with it)
    admin_only = True

    @extend_schema(responses=AuditEventSerializer(many=True))
    def get(self, request):
        qs = selectors.audit_for_org(request.auth.org, action=request.query_params.get("action"))
        paginator = Cursor()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(AuditEventSerializer(page, many=True).data)
