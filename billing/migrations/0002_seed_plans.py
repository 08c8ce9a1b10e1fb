from django.db import migrations

GiB = 1024**3
PLANS = [
    dict(slug="free", name="Free", concurrent_sandboxes=3, executions_per_day=1000, cpu_seconds_per_month=3600,
         memory_per_sandbox_mb=256, max_run_seconds=30, snapshot_storage_bytes=1 * GiB, requests_per_minute=300,
         request_burst=60, idle_timeout_seconds=600, max_lifetime_seconds=3600),
    dict(slug="pro", name="Pro", concurrent_sandboxes=50, executions_per_day=100_000,
         cpu_seconds_per_month=360_000, memory_per_sandbox_mb=2048, max_run_seconds=600,
         snapshot_storage_bytes=50 * GiB, requests_per_minute=6000, request_burst=1000,
         idle_timeout_seconds=3600, max_lifetime_seconds=86_400),
    dict(slug="enterprise", name="Enterprise", concurrent_sandboxes=500, executions_per_day=10_000_000,
         cpu_seconds_per_month=36_000_000, memory_per_sandbox_mb=16384, max_run_seconds=3600,
         snapshot_storage_bytes=1024 * GiB, requests_per_minute=60_000, request_burst=10_000,
         idle_timeout_seconds=86_400, max_lifetime_seconds=7 * 86_400),
]


def seed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for plan in PLANS:
        Plan.objects.update_or_create(slug=plan["slug"], defaults=plan)


def unseed(apps, schema_editor):
    apps.get_model("billing", "Plan").objects.filter(slug__in=[p["slug"] for p in PLANS]).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
