"""Signals accounts sends for higher apps to act on (accounts imports none of them).

`principal_changed`: what a key or an organisation may do has changed. Sent with `key_prefix` when a key is
revoked (accounts/services.py) and with `org_id` whenever an organisation's keys are forgotten (suspension,
unsuspension, its plan or overrides changed: accounts/authentication.py `forget_org_keys`), after the caches
have dropped them. The websocket layer uses it to re-check and close live sockets at once
(sandboxes/websocket_auth.py); an edit of a plan itself reaches sockets with their next message.
"""

from django.dispatch import Signal

principal_changed = Signal()
