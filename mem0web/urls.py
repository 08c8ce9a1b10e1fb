"""URL wiring: API under /api/v1/, schema and docs, health, metrics (operators only), admin, console."""

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.urls import api_urlpatterns as accounts_api
from accounts.urls import console_urlpatterns as accounts_console
from billing.urls import api_urlpatterns as billing_api
from console.urls import console_urlpatterns as console_pages
from mem0web import errors
from mem0web.health import healthz
from mem0web.metrics import metrics
from sandboxes.urls import api_urlpatterns as sandboxes_api

api_v1 = accounts_api + sandboxes_api + billing_api


@csrf_exempt  # it changes nothing: any method on an unknown API path is a JSON 404, never a CSRF page
def api_not_found(request, rest=""):
    return errors.handler404(request)


urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="prometheus-django-metrics"),
    path("admin/", admin.site.urls),
    path("", include(accounts_console)),
    path("", include(console_pages)),
]

handler400 = "mem0web.errors.handler400"
handler403 = "mem0web.errors.handler403"
handler404 = "mem0web.errors.handler404"
handler500 = "mem0web.errors.handler500"
