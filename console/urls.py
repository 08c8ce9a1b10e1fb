from django.urls import path

from console import members, views

console_urlpatterns = [
    path("playground", views.playground, name="console-playground"),
    path("sandboxes", views.sandboxes, name="console-sandboxes"),
    path("sandboxes/kill-all", views.sandboxes_kill_all, name="console-sandboxes-kill-all"),
    path("sandboxes/<str:sandbox_id>", views.sandbox_detail, name="console-sandbox"),
    path("sandboxes/<str:sandbox_id>/kill", views.sandbox_kill, name="console-sandbox-kill"),
    path("snapshots", views.snapshots, name="console-snapshots"),
    path("quickstart", views.quickstart, name="console-quickstart"),
    path("members", members.members, name="console-members"),
    path("invite/<str:token>", members.invite, name="console-invite"),
]
