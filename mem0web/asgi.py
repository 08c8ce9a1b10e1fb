"""ASGI entry: HTTP through Django (static files served by staticfiles' ASGI handler), websockets through Channels."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mem0web.settings")
django.setup(set_prefix=False)

from mem0web import bodylimit, twistedpatch  # noqa: E402

twistedpatch.install()
bodylimit.install()  # request bodies and websocket messages capped in Daphne before they are read

from mem0web.handlers import Mem0ASGIHandler  # noqa: E402  (needs Django set up first)

django_asgi = Mem0ASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from sandboxes.routing import websocket_urlpatterns  # noqa: E402
from sandboxes.websocket_auth import SessionOriginValidator  # noqa: E402

application = ProtocolTypeRouter({
    "http": ASGIStaticFilesHandler(django_asgi),
    # Cookie-authenticated sockets only from ALLOWED_HOSTS origins; key-authenticated ones from anywhere.
    "websocket": SessionOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
