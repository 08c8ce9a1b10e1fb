"""The hot paths render sandboxes and executions directly (serializers.sandbox_json / execution_json); the
DRF serializers stay the documented schema. Both must give the same JSON, for rows in every state."""

from datetime import timedelta

import pytest
from django.utils import timezone

from mem0web.sql import rows_where
from sandboxes.models import Execution, Sandbox
from sandboxes.serializers import ExecutionSerializer, SandboxSerializer, execution_json, sandbox_json


@pytest.fixture
def rows(org_a):
    org = org_a[0]
    now = timezone.now()
    parent = Sandbox.objects.create(organization=org, runtime="python", agent_id="a1", state=Sandbox.State.RUNNING,
                                    env={"A": "1"}, metadata={"team": "x"}, limits={"memory_bytes": 1},
                                    expires_at=now + timedelta(hours=1))
    child = Sandbox.objects.create(organization=org, runtime="python", parent=parent, memory="copied",
                                   state=Sandbox.State.STOPPED, stop_reason="killed", stopped_at=now)
    running = Execution.objects.create(organization=org, sandbox=parent, code="x", status=Execution.Status.RUNNING)
    done = Execution.objects.create(organization=org, sandbox=parent, code="print(1)", status=Execution.Status.SUCCEEDED,
                                    exit_code=0, stdout="1\n", stderr="é", wall_ms=1.5, cpu_ms=2, peak_memory_bytes=10,
                                    limit="memory", truncated=True, timeout_s=3, finished_at=now)
    return org, [parent, child], [running, done]


def test_sandbox_json_matches_the_serializer(rows):
    org, sandboxes, _ = rows
    for sandbox in sandboxes:
        for instance in (sandbox, Sandbox.objects.get(pk=sandbox.pk), rows_where(Sandbox, id=sandbox.pk)[0]):
            assert sandbox_json(instance) == SandboxSerializer(instance).data


def test_execution_json_matches_the_serializer(rows):
    _, _, executions = rows
    for execution in executions:
        for instance in (execution, Execution.objects.get(pk=execution.pk)):
            assert execution_json(instance) == ExecutionSerializer(instance).data


def test_rows_where_reads_what_the_orm_reads(rows):
    org, sandboxes, _ = rows
    for sandbox in sandboxes:
        (fast,) = rows_where(Sandbox, id=sandbox.pk, organization_id=org.pk)
        slow = Sandbox.objects.get(pk=sandbox.pk)
        assert {f.attname: getattr(fast, f.attname) for f in Sandbox._meta.concrete_fields} == \
               {f.attname: getattr(slow, f.attname) for f in Sandbox._meta.concrete_fields}
        assert not fast._state.adding
    assert rows_where(Sandbox, id=sandboxes[0].pk, organization_id=org.pk + 1000) == []
