"""Plans and per-organisation overrides: every limit of DESIGN §5 is a field."""

from django.db import models

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

    def __str__(self) -> str:
        return self.name


class PlanOverride(models.Model):
    """An operator's per-organisation exception to its plan; null fields fall back to the plan."""

    organization = models.OneToOneField("accounts.Organization", on_delete=models.CASCADE, related_name="plan_override")
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

    def __str__(self) -> str:
        return f"overrides for {self.organization}"
