"""API key format and hashing: `mem0_<prefix>_<secret>`, stored as prefix + HMAC-SHA256(pepper, secret)."""

import hashlib
import hmac
import re
import secrets
import string

from django.conf import settings

KEY_RE = re.compile(r"^mem0_([a-z0-9]{12})_([A-Za-z0-9]{40})$")
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits

ALL_SCOPES = (
    "sandboxes:read",
    "sandboxes:write",
    "snapshots:read",
    "snapshots:write",
    "keys:read",
    "keys:write",
    "audit:read",
    "usage:read",
)


def new_key_material() -> tuple[str, str, str]:
    """Return (prefix, secret, full key); the secret has ~238 bits of entropy."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(12))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    return prefix, secret, f"mem0_{prefix}_{secret}"


def digest_secret(secret: str) -> str:
    return hmac.new(settings.API_KEY_PEPPER.encode(), secret.encode(), hashlib.sha256).hexdigest()


def parse_key(raw: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, else None."""
    match = KEY_RE.match(raw)
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, digest: str) -> bool:
    return hmac.compare_digest(digest_secret(secret), digest)
