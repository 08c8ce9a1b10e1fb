from django.urls import path

from sandboxes.consumers import ExecutionConsumer, SandboxConsumer

websocket_urlpatterns = [
    path("ws/executions/<str:execution_id>/", ExecutionConsumer.as_asgi()),
    path("ws/sandboxes/<str:sandbox_id>/", SandboxConsumer.as_asgi()),
]
