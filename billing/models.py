"""Plans and per-organisation overrides: every limit of DESIGN §5 is a field."""

from django.db import models
from django.utils import timezone

LIMIT_FIELDS = (
    "concurrent_sandboxes",
    "executions_per_day",
    "cpu_seconds_per_month",
    "memory_per_sandbox_mb",
    "max_run_seconds",
    "snapshot_storage_bytes",
    "requests_per_minute",
    "request_burst",
    "idle_timeout_seconds",
    "max_lifetime_seconds",
    "pause_on_idle",
)


class Plan(models.Model):
    """A tier (Free, Pro, Enterprise); editable by operators in the admin."""

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=60)
    concurrent_sandboxes = models.PositiveIntegerField()
    executions_per_day = models.PositiveIntegerField()
    cpu_seconds_per_month = models.PositiveBigIntegerField()
    memory_per_sandbox_mb = models.PositiveIntegerField()
    max_run_seconds = models.PositiveIntegerField()
    snapshot_storage_bytes = models.PositiveBigIntegerField()
    requests_per_minute = models.PositiveIntegerField(help_text="Token-bucket refill rate.")
    request_burst = models.PositiveIntegerField(help_text="Token-bucket capacity.")
    idle_timeout_seconds = models.PositiveIntegerField()
    max_lifetime_seconds = models.PositiveIntegerField()
    pause_on_idle = models.BooleanField(
        default=False, help_text="An idle sandbox is paused (memory kept, until its lifetime ends), not stopped.")

    def __str__(self) -> str:
        return self.name


class PlanOverride(models.Model):
    """An operator's per-organisation exception to its plan; null fields fall back to the plan."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.CASCADE, related_name="plan_override"
    )
    concurrent_sandboxes = models.PositiveIntegerField(null=True, blank=True)
    executions_per_day = models.PositiveIntegerField(null=True, blank=True)
    cpu_seconds_per_month = models.PositiveBigIntegerField(null=True, blank=True)
    memory_per_sandbox_mb = models.PositiveIntegerField(null=True, blank=True)
    max_run_seconds = models.PositiveIntegerField(null=True, blank=True)
    snapshot_storage_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    request_burst = models.PositiveIntegerField(null=True, blank=True)
    idle_timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    max_lifetime_seconds = models.PositiveIntegerField(null=True, blank=True)
    pause_on_idle = models.BooleanField(null=True, blank=True)

    def __str__(self) -> str:
        return f"overrides for {self.organization}"


class SandboxSlots(models.Model):
    """Live sandboxes per organisation, taken and given back atomically (a conditional UPDATE)."""

    organization = models.OneToOneField("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    in_use = models.PositiveIntegerField(default=0)


class StorageHeld(models.Model):
    """Snapshot storage an organisation holds now: the bytes its live snapshots keep referenced, each chunk
    counted once however many snapshots share it (computed by sandboxes/storage.py from the manifests on
    every snapshot create and delete, under this row's lock)."""

    organization = models.OneToOneField("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    bytes = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class UsagePeriod(models.Model):
    """Usage of one organisation in one period (a UTC day or month), rolled up from UsageEvents.

    `executions`, `cpu_us` and `sandbox_ms` are sums of reported UsageEvents (metered after the work), kept
    in micro- and milliseconds so the sums equal the reported figures (the API shows ms and seconds). `executions_admitted` is the admission counter the daily limit is enforced on (taken before the
    work, with a conditional UPDATE), so it also counts runs still in flight or whose dispatch failed.
    `storage_bytes` is the highest snapshot storage seen by a roll-up during the period (a gauge, not a sum).
    """

    class Kind(models.TextChoices):
        DAY = "day"
        MONTH = "month"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=5, choices=Kind.choices)
    start = models.DateField()
    executions = models.PositiveBigIntegerField(default=0)
    cpu_us = models.PositiveBigIntegerField(default=0)
    sandbox_ms = models.PositiveBigIntegerField(default=0)
    storage_bytes = models.PositiveBigIntegerField(default=0)
    executions_admitted = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "kind", "start"], name="one_usage_row")
        ]


class UsageEvent(models.Model):
    """One agent-reported figure (an execution's CPU, a sandbox's lifetime); `source` makes reports idempotent."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=80, unique=True)
    executions = models.PositiveIntegerField(default=0)
    cpu_us = models.PositiveBigIntegerField(default=0)
    sandbox_ms = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    rolled_up = models.BooleanField(default=False, db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "rolled_up", "created_at"], name="usage_event_pending")
        ]
