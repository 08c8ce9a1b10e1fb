"""Sandboxes, executions, snapshots, the agents' registry and idempotency records."""

from django.db import models
from django.utils import timezone

from sandboxes.ids import new_execution_id, new_sandbox_id, new_snapshot_id


class TenantQuerySet(models.QuerySet):
    def for_org(self, org):
        return self.filter(organization=org)


class Agent(models.Model):
    """A fork-agent seen on the bus; refreshed by the dead-agent sweep, shown in admin."""

    id = models.CharField(primary_key=True, max_length=64)
    host = models.CharField(max_length=255, blank=True)
    capacity = models.PositiveIntegerField(default=0)
    runtimes = models.JSONField(default=list)
    load = models.PositiveIntegerField(default=0)
    alive = models.BooleanField(default=True)
    last_heartbeat = models.DateTimeField(null=True)
    stats = models.JSONField(default=dict, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.id


class Sandbox(models.Model):
    class State(models.TextChoices):
        STARTING = "starting"
        RUNNING = "running"
        PAUSED = "paused"
        STOPPED = "stopped"
        LOST = "lost"

    LIVE_STATES = (State.STARTING, State.RUNNING, State.PAUSED)

    id = models.CharField(primary_key=True, max_length=32, default=new_sandbox_id, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="sandboxes")
    runtime = models.CharField(max_length=32)
    state = models.CharField(max_length=10, choices=State.choices, default=State.STARTING, db_index=True)
    agent_id = models.CharField(max_length=64, blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks")
    source_snapshot = models.ForeignKey("sandboxes.Snapshot", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="restored_sandboxes")
    memory = models.CharField(max_length=8, blank=True,
                              help_text="On a fork: copied or fresh; lost once its interpreter died and was restarted.")
    env = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    limits = models.JSONField(default=dict, blank=True)
    created_by_user = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    created_by_key = models.ForeignKey("accounts.APIKey", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    last_snapshot = models.ForeignKey("sandboxes.Snapshot", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    stop_reason = models.CharField(max_length=40, blank=True)
    cpu_between_runs_us = models.PositiveBigIntegerField(
        default=0, help_text="CPU used outside recorded runs and metered already (periodically, and at the end).")
    created_at = models.DateTimeField(default=timezone.now)
    last_active_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True, help_text="Set while paused (cgroup frozen).")
    exposed_ports = models.JSONField(default=list, blank=True, help_text="Ports reachable through the web tier.")
    stopped_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at"]), models.Index(fields=["agent_id", "state"])]

    def __str__(self) -> str:
        return self.id


class Execution(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        TIMEOUT = "timeout"
        KILLED = "killed"
        CANCELLED = "cancelled"
        AGENT_LOST = "agent_lost"
        COMPILE_ERROR = "compile_error"  # compiled runtimes (Go): the code did not compile

    OPEN_STATUSES = (Status.QUEUED, Status.RUNNING)

    id = models.CharField(primary_key=True, max_length=32, default=new_execution_id, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="executions")
    code = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    exit_code = models.IntegerField(null=True, blank=True)
    stdout = models.TextField(blank=True)
    stderr = models.TextField(blank=True)
    truncated = models.BooleanField(default=False)
    wall_ms = models.FloatField(null=True, blank=True)
    cpu_ms = models.FloatField(null=True, blank=True)
    peak_memory_bytes = models.BigIntegerField(null=True, blank=True)
    limit = models.CharField(max_length=10, null=True, blank=True)
    results = models.JSONField(default=list, blank=True,
                               help_text="Rich results, as Jupyter gives them: a list of {mime: data}.")
    error = models.JSONField(null=True, blank=True, help_text="The uncaught exception: {name, value, traceback}.")
    timeout_s = models.FloatField(default=30)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A command (sandboxes/commands.py) is an execution too: same stream, result, quotas and metering.
    kind = models.CharField(max_length=8, default="run", db_default="run", help_text="run (code in the interpreter) or command.")
    cmd = models.JSONField(null=True, blank=True, help_text="A command's argv.")
    cwd = models.CharField(max_length=1024, blank=True, default="", db_default="")
    background = models.BooleanField(default=False, db_default=False)
    pid = models.IntegerField(null=True, blank=True, help_text="A command's pid inside its sandbox.")

    objects = TenantQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at"]), models.Index(fields=["sandbox", "-created_at"])]

    def __str__(self) -> str:
        return self.id


class Snapshot(models.Model):
    class Tier(models.TextChoices):
        HOT = "hot"
        COLD = "cold"

    id = models.CharField(primary_key=True, max_length=32, default=new_snapshot_id, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="snapshots")
    sandbox = models.ForeignKey(Sandbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshots")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    digest = models.CharField(max_length=64, db_index=True)
    # The block store namespace holding its chunks: the organisation's own ("org-<id>", see
    # sandboxes/storage.py); "" for snapshots taken before stores were scoped per organisation.
    store_scope = models.CharField(max_length=63, blank=True, default="")
    name = models.CharField(max_length=120, blank=True)
    runtime = models.CharField(max_length=32)
    env = models.JSONField(default=dict, blank=True)
    code_history = models.JSONField(default=list, blank=True)
    logical_bytes = models.BigIntegerField(default=0)
    new_bytes = models.BigIntegerField(default=0)
    stored_bytes = models.BigIntegerField(default=0)
    files = models.IntegerField(default=0)
    tier = models.CharField(max_length=4, choices=Tier.choices, default=Tier.HOT)
    created_by_user = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    created_by_key = models.ForeignKey("accounts.APIKey", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self) -> str:
        return self.id


class SnapshotTag(models.Model):
    """A tag (e.g. `production-v1`) points to one snapshot per organisation."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.SlugField(max_length=80)
    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="tag_set")
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="one_tag_per_org")]


class IdempotencyRecord(models.Model):
    """The stored answer to a request sent with an Idempotency-Key, replayed for a retry."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(default=0, help_text="0 while the first request is in flight.")
    body = models.JSONField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "key"], name="one_idempotency_key_per_org")]
