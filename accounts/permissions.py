"""Per-view authorisation: the principal's organisation is active and holds the view's scope (and role)."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.principal import Principal
from mem0web.errors import Mem0Error, PermissionDenied


class OrganizationSuspended(Mem0Error):
    code, status, message = "organization_suspended", 403, "This organisation is suspended."


class HasScope(BasePermission):
    """Views declare `scope = "sandboxes"` (GET→:read, others→:write) and optionally `admin_only = True`."""

    def has_permission(self, request, view) -> bool:
        principal = request.auth
        if not isinstance(principal, Principal):
            return False
        if principal.org.suspended:
            raise OrganizationSuspended()
        scope = getattr(view, "scope", None)
        if scope is None:
            return True
        needed = f"{scope}:{'read' if request.method in SAFE_METHODS else 'write'}"
        if not principal.can(needed):
            raise PermissionDenied(f"This key lacks the {needed} scope.", details={"required_scope": needed})
        if getattr(view, "admin_only", False) and not principal.is_admin:
            raise PermissionDenied("Only organisation owners and admins may do this.")
        return True
