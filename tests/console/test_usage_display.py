"""Usage in human units and the monthly chart bars (console/usage_display.py)."""

from console.usage_display import binary_size, charts, cpu_hours, duration


def test_units_read_as_a_person_would():
    assert binary_size(512) == "512 B"
    assert binary_size(1536) == "1.5 KiB"
    assert binary_size(5 * 1024**3) == "5.0 GiB"
    assert cpu_hours(4200.25) == "4.2 CPU-seconds"
    assert cpu_hours(90_000) == "1.5 CPU-minutes"
    assert cpu_hours(7_200_000) == "2.00 CPU-hours"
    assert duration(30) == "30 s" and duration(5400) == "1.5 h"


def test_chart_bars_are_scaled_to_the_largest_month_or_the_limit():
    month = lambda start, cpu: {"period": {"start": start}, "executions": 1, "cpu_ms": cpu,  # noqa: E731
                                "sandbox_seconds": 0, "storage_bytes": 0}
    usage = {"period": {"start": "2026-11-01T00:00:00+00:00"}, "cpu_ms": {"limit": 1000},
             "month": {"executions": 3, "cpu_ms": 500, "sandbox_seconds": 0, "storage_bytes": 0},
             "history": [month("2026-10-01", 250), month("2026-09-01", 2000)]}
    cpu = next(c for c in charts(usage) if c["name"] == "cpu_ms")
    assert [b["month"] for b in cpu["bars"]] == ["2026-09", "2026-10", "2026-11"]
    assert [b["height"] for b in cpu["bars"]] == [80, 10, 20]  # scaled to September's 2000 ms
    assert cpu["limit_y"] == 40  # the 1000 ms limit halfway up
    runs = next(c for c in charts(usage) if c["name"] == "executions")
    assert runs["limit_y"] is None and [b["value"] for b in runs["bars"]] == [1, 1, 3]
