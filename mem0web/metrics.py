"""`/metrics` (Prometheus) for operators only (finding 18: it was open to anyone).

Served to a request with `Authorization: Bearer <MEM0_METRICS_TOKEN>` (what a Prometheus scrape config
sends) or from a signed-in staff session; anything else is 401 `authentication_failed`. Without a token
configured only staff sessions get it: a "loopback only" rule would let everyone through as soon as a
reverse proxy on the same host forwards /metrics, so the address is never what decides.
"""

import hmac

from django.conf import settings
from django.http import JsonResponse
from django_prometheus.exports import ExportToDjangoView

from mem0web.errors import error_body


def operator_may_scrape(request) -> bool:
    token = settings.MEM0_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if (
        token
        and header[:7].lower() == "bearer "
        and hmac.compare_digest(header[7:].strip().encode(), token.encode())
    ):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def metrics(request):
    if not operator_may_scrape(request):
        response = JsonResponse(
            error_body(
                "authentication_failed",
                "Metrics are for operators: send the metrics token as a Bearer token, or sign in as staff.",
            ),
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return ExportToDjangoView(request)
