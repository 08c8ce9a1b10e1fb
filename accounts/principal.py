"""Who is acting on a request: a user (console session) or an API key, always inside one organisation."""

from dataclasses import dataclass

from accounts.models import APIKey, Membership, Organization


@dataclass(frozen=True)
class Principal:
    org: Organization
    role: str
    scopes: frozenset[str]
    user: object | None = None
    key: APIKey | None = None

    @property
    def label(self) -> str:
        if self.key is not None:
            return f"key:{self.key.prefix}"
        return f"user:{getattr(self.user, 'username', '?')}"

    @property
    def is_admin(self) -> bool:
        return self.role in (Membership.Role.OWNER, Membership.Role.ADMIN)

    def can(self, scope: str) -> bool:
        return scope in self.scopes
