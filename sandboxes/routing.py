from django.urls import path

from sandboxes.consumers import ExecutionConsumer, SandboxConsumer
from sandboxes.watch_consumer import WatchConsumer

websocket_urlpatterns = [
    path("ws/executions/<str:execution_id>/", ExecutionConsumer.as_asgi()),
    path("ws/sandboxes/<str:sandbox_id>/", SandboxConsumer.as_asgi()),
    path("ws/sandboxes/<str:sandbox_id>/watch/", WatchConsumer.as_asgi()),
]
