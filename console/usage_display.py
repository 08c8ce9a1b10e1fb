"""The dashboard's usage in human units (GiB, CPU-hours, hours) and the bars of its monthly charts.

Raw figures stay in the API (GET /api/v1/usage); this turns the same report into what a person reads."""

LABELS = {
    "concurrent_sandboxes": "Sandboxes running now",
    "executions": "Runs today",
    "cpu_ms": "CPU this month",
    "sandbox_seconds": "Sandbox time this month",
    "storage_bytes": "Snapshot storage",
}
CHARTED = ("executions", "cpu_ms", "sandbox_seconds", "storage_bytes")
CHART_HEIGHT = 80


def binary_size(n: float) -> str:
    """Bytes in powers of 1024 with their IEC names: 1536 → "1.5 KiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def cpu_hours(ms: float) -> str:
    hours = ms / 3_600_000
    if hours >= 1:
        return f"{hours:.2f} CPU-hours"
    return f"{ms / 1000:.1f} CPU-seconds" if ms < 60_000 else f"{ms / 60_000:.1f} CPU-minutes"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def human(metric: str, value) -> str:
    if value is None:
        return "no limit"
    if metric == "cpu_ms":
        return cpu_hours(value)
    if metric == "sandbox_seconds":
        return duration(value)
    if metric == "storage_bytes":
        return binary_size(value)
    return f"{value:,}"


def meters(usage: dict) -> list[dict]:
    """One row per metric: its label, used and limit as text, the share of the limit used (0-100)."""
    rows = []
    for name, label in LABELS.items():
        m = usage[name]
        percent = min(100, round(100 * m["used"] / m["limit"])) if m["limit"] else None
        rows.append({"name": name, "label": label, "used": m["used"], "limit": m["limit"],
                     "used_text": human(name, m["used"]), "limit_text": human(name, m["limit"]),
                     "percent": percent, "window": m["window"], "resets_at": m["resets_at"]})
    return rows


def charts(usage: dict) -> list[dict]:
    """Per metric, a bar per month (oldest first, this month last) scaled to the chart, and the monthly
    limit's height where the plan sets one per month (CPU)."""
    months = list(reversed(usage["history"])) + [{"period": usage["period"], **usage["month"]}]
    out = []
    for name in CHARTED:
        limit = usage["cpu_ms"]["limit"] if name == "cpu_ms" else None
        values = [float(m.get(name) or 0) for m in months]
        top = max(values + [limit or 0]) or 1
        bars = []
        for i, (m, v) in enumerate(zip(months, values, strict=True)):
            height = round(CHART_HEIGHT * v / top, 1)
            bars.append({"month": m["period"]["start"][:7], "value": v, "text": human(name, v),
                         "height": height, "y": round(CHART_HEIGHT - height, 1), "x": i * 34})
        out.append({"name": name, "label": LABELS[name].replace(" this month", "").replace(" today", ""),
                    "bars": bars, "width": max(len(bars), 7) * 34, "height": CHART_HEIGHT,
                    "limit_y": round(CHART_HEIGHT - CHART_HEIGHT * limit / top, 1) if limit else None,
                    "limit_text": human(name, limit) if limit else None})
    return out
