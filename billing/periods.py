"""Usage periods: a UTC day (the executions limit) and a UTC calendar month (CPU, billing).

Every function takes `now` so callers and tests decide the clock; a period is [start, end).
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.utils import timezone

DAY = "day"
MONTH = "month"


@dataclass(frozen=True)
class Period:
    kind: str
    start: date

    @property
    def end(self) -> date:
        if self.kind == DAY:
            return self.start + timedelta(days=1)
        return (self.start.replace(day=28) + timedelta(days=4)).replace(day=1)

    @property
    def starts_at(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def ends_at(self) -> datetime:
        end = self.end
        return datetime(end.year, end.month, end.day, tzinfo=UTC)

    def previous(self) -> "Period":
        if self.kind == DAY:
            return Period(DAY, self.start - timedelta(days=1))
        return Period(MONTH, (self.start - timedelta(days=1)).replace(day=1))

    def as_dict(self) -> dict:
        return {"kind": self.kind, "start": self.starts_at.isoformat(), "end": self.ends_at.isoformat()}


def period_of(kind: str, now: datetime | None = None) -> Period:
    """The day or month containing `now` (UTC)."""
    day = (now or timezone.now()).astimezone(UTC).date()
    return Period(kind, day if kind == DAY else day.replace(day=1))
