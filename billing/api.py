"""REST view for GET /api/v1/usage (scope usage:read): the organisation's usage against its limits."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.periods import DAY, MONTH
from billing.selectors import usage_report
from mem0web.errors import InvalidRequest

HISTORY_COUNT = {MONTH: 12, DAY: 31}

_metric = inline_serializer(
    "UsageMetric",
    {
        "used": serializers.IntegerField(),
        "limit": serializers.IntegerField(allow_null=True),
        "window": serializers.CharField(),
        "resets_at": serializers.DateTimeField(allow_null=True),
    },
)


class UsageView(APIView):
    scope = "usage"

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "history",
                str,
                enum=[MONTH, DAY],
                description="Granularity of `history`: previous months (default) or days.",
            )
        ],
        responses=inline_serializer(
            "Usage",
            {
                "period": serializers.DictField(),
                "executions": _metric,
                "cpu_ms": _metric,
                "sandbox_seconds": _metric,
                "storage_bytes": _metric,
                "concurrent_sandboxes": _metric,
                "month": serializers.DictField(),
                "history": serializers.ListField(child=serializers.DictField()),
            },
        ),
    )
    def get(self, request):
        history = request.query_params.get("history", MONTH)
        if history not in HISTORY_COUNT:
            raise InvalidRequest("history must be 'month' or 'day'.", details={"history": history})
        return Response(usage_report(request.auth.org, history=history, history_count=HISTORY_COUNT[history]))
