from django.urls import path

from sandboxes import api, snapshot_api

api_urlpatterns = [
    path("sandboxes", api.SandboxListView.as_view(), name="api-sandboxes"),
    path("sandboxes/<str:sandbox_id>", api.SandboxDetailView.as_view(), name="api-sandbox"),
    path("sandboxes/<str:sandbox_id>/fork", api.SandboxForkView.as_view(), name="api-sandbox-fork"),
    path("sandboxes/<str:sandbox_id>/executions", api.ExecutionCreateView.as_view(), name="api-executions"),
    path("sandboxes/<str:sandbox_id>/files", api.SandboxFilesView.as_view(), name="api-files"),
    path("sandboxes/<str:sandbox_id>/files/<path:path>", api.SandboxFileView.as_view(), name="api-file"),
    path("executions/<str:execution_id>", api.ExecutionDetailView.as_view(), name="api-execution"),
    path("executions/<str:execution_id>/cancel", api.ExecutionCancelView.as_view(), name="api-execution-cancel"),
    path("executions/<str:execution_id>/events", api.ExecutionEventsView.as_view(), name="api-execution-events"),
    path("runtimes", api.RuntimesView.as_view(), name="api-runtimes"),
    path("sandboxes/<str:sandbox_id>/snapshots", snapshot_api.SandboxSnapshotsView.as_view(), name="api-sandbox-snapshots"),
    path("snapshots", snapshot_api.SnapshotListView.as_view(), name="api-snapshots"),
    path("snapshots/<str:snapshot_id>", snapshot_api.SnapshotDetailView.as_view(), name="api-snapshot"),
    path("snapshots/<str:snapshot_id>/restore", snapshot_api.SnapshotRestoreView.as_view(), name="api-snapshot-restore"),
    path("snapshots/<str:snapshot_id>/tags/<str:tag>", snapshot_api.SnapshotTagView.as_view(), name="api-snapshot-tag"),
    path("snapshots/<str:snapshot_id>/lineage", snapshot_api.SnapshotLineageView.as_view(), name="api-snapshot-lineage"),
]
