"""Request text on its way to the ORM: names are validated, values are plain data.

Query parameters become filter *values* only; the one place a client names a field (`?metadata.KEY=`)
takes a validated name and looks it up as data (`KeyTextTransform`), never as ORM lookup syntax, so
`metadata.a__regex=...` cannot turn into a regex match (finding 3: a ReDoS under the GIL on SQLite).
"""

import re

from mem0web.errors import InvalidRequest

# A metadata key: what `?metadata.KEY=` accepts and what a sandbox's metadata may hold, so every key a
# client sets can be filtered on. `__` is Django's lookup separator: refused even though lookups are never
# parsed from it, so no path can ever read it as one.
FIELD_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_VALUE_CHARS = 512


def field_name(name, *, what: str = "key") -> str:
    """`name` if it is 1-64 of [A-Za-z0-9_.-] without `__`, else InvalidRequest (400 invalid_request)."""
    if not isinstance(name, str) or not FIELD_NAME.fullmatch(name) or "__" in name:
        raise InvalidRequest(
            f"A {what} is 1-64 letters, digits, '_', '.' or '-', without '__'.",
            details={what: str(name)[:80]},
        )
    return name


def filter_value(name: str, value: str) -> str:
    """A query parameter used as an exact-match value: bounded and free of NUL (PostgreSQL text cannot hold
    one, and the driver's refusal would be a 500)."""
    if len(value) > MAX_VALUE_CHARS or "\x00" in value:
        raise InvalidRequest(
            f"{name} must be at most {MAX_VALUE_CHARS} characters, without NUL.", details={"parameter": name}
        )
    return value
