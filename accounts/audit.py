"""Writing audit events: one function every service calls."""

from accounts.models import AuditEvent, Organization


def client_ip(request) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def audit_record(**fields) -> AuditEvent:
    """Append an audit event (arguments as `audit_event`)."""
    event = audit_event(**fields)
    event.save(force_insert=True)
    return event


def audit_event(*, org: Organization | None, action: str, principal=None, request=None, user=None,
                target_type: str = "", target_id: str = "", metadata: dict | None = None,
                actor_label: str = "") -> AuditEvent:
    """An unsaved audit event; the actor is the principal's key or user, or `user` when given. For writers
    that insert it in the same statement as the change it records (mem0web.sql.update_and_insert)."""
    key = getattr(principal, "key", None)
    actor_user = user or getattr(principal, "user", None)
    label = actor_label or (principal.label if principal is not None else "")
    if not label and actor_user is not None:
        label = f"user:{actor_user.username}"
    return AuditEvent(
        organization=org,
        actor_user=actor_user if getattr(actor_user, "pk", None) else None,
        actor_key=key,
        actor_label=label[:200],
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        ip=client_ip(request),
        user_agent=(request.META.get("HTTP_USER_AGENT", "")[:300] if request is not None else ""),
        metadata=metadata or {},
    )
