"""Usage in finer units: cpu_ms → cpu_us and sandbox_seconds → sandbox_ms, existing figures scaled."""

from django.db import migrations
from django.db.models import F

MODELS = ("UsageEvent", "UsagePeriod")


def to_fine(apps, schema_editor):
    for name in MODELS:
        apps.get_model("billing", name).objects.update(
            cpu_us=F("cpu_us") * 1000, sandbox_ms=F("sandbox_ms") * 1000
        )


def to_coarse(apps, schema_editor):
    for name in MODELS:
        apps.get_model("billing", name).objects.update(
            cpu_us=F("cpu_us") / 1000, sandbox_ms=F("sandbox_ms") / 1000
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_usage_admissions")]

    operations = [
        migrations.RenameField("usageevent", "cpu_ms", "cpu_us"),
        migrations.RenameField("usageevent", "sandbox_seconds", "sandbox_ms"),
        migrations.RenameField("usageperiod", "cpu_ms", "cpu_us"),
        migrations.RenameField("usageperiod", "sandbox_seconds", "sandbox_ms"),
        migrations.RunPython(to_fine, to_coarse),
    ]
