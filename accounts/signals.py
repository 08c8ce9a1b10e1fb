"""Signals accounts sends for higher apps to act on (accounts imports none of them).

`principal_changed`: what a key or an organisation may do has changed (key revoked, organisation suspended
or unsuspended, plan or quota changed). Sent with `org_id` (every principal of that organisation) or
`key_prefix` (one key), after the caches have forgotten them; the websocket layer uses it to re-check and
close live sockets at once (sandboxes/websocket_auth.py).
"""

from django.dispatch import Signal

principal_changed = Signal()
