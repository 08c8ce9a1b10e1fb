"""`Idempotency-Key` for create, fork, snapshot and restore: a retry gets the first answer, not a second object.

The first request inserts a pending record (unique per organisation and key); a concurrent duplicate sees
it and gets 409 conflict; a later retry with the same method, path and body replays the stored response;
the same key with a different request is 409 conflict. Failures are not stored, so a failed call can be
retried with its key. Records older than RETENTION are deleted by the reaper.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from rest_framework.response import Response

from mem0web.errors import Conflict, InvalidRequest
from sandboxes.models import IdempotencyRecord

RETENTION = timedelta(hours=24)


def idempotent(request, org, handler: Callable[[], Response]) -> Response:
    key = request.headers.get("Idempotency-Key")
    if not key:
        return handler()
    if len(key) > 200:
        raise InvalidRequest("Idempotency-Key may be at most 200 characters.")
    body = json.dumps(request.data, sort_keys=True, default=str).encode()
    fingerprint = hashlib.sha256(b"\0".join([request.method.encode(), request.path.encode(), body])).hexdigest()
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(organization=org, key=key, fingerprint=fingerprint)
    except IntegrityError:
        record = IdempotencyRecord.objects.get(organization=org, key=key)
        if record.fingerprint != fingerprint:
            raise Conflict("This Idempotency-Key was used for a different request.") from None
        if record.status == 0:
            raise Conflict("A request with this Idempotency-Key is still in progress.") from None
        return Response(record.body, status=record.status, headers={"Idempotent-Replayed": "true"})
    try:
        response = handler()
    except BaseException:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        raise
    IdempotencyRecord.objects.filter(pk=record.pk).update(status=response.status_code, body=response.data)
    return response
