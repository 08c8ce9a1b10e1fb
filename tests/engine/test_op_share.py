"""One organisation cannot hold every op worker of an agent (issue 13, "Also"): slow ops of one
owner (here forks of a frozen sandbox, which wait for it) take at most OPS_PER_OWNER workers;
its next op is refused at once with rate_limited while another owner's ops go through."""

from __future__ import annotations

import threading
import time
import uuid

from sandboxes.engine.agent import OPS_PER_OWNER
from sandboxes.engine.protocol import EngineError, Limits


def test_one_owner_gets_at_most_its_share_of_op_workers(engine, witness):
    agent = engine.agent
    mine = engine.create()
    theirs = engine.create()
    frozen = agent.sandboxes[mine]
    a = engine.client.for_owner("org-a")
    b = engine.client.for_owner("org-b")
    frozen.cgroup.freeze()
    results: list = []

    def fork():
        try:
            results.append(
                a.fork(
                    engine.agent_id,
                    sandbox_id=mine,
                    new_sandbox_id=f"f-{uuid.uuid4().hex[:8]}",
                    limits=Limits(),
                    timeout=60,
                )
            )
        except EngineError as exc:
            results.append(exc)

    workers = [threading.Thread(target=fork) for _ in range(OPS_PER_OWNER)]
    try:
        for t in workers:
            t.start()
        deadline = time.monotonic() + 10
        while agent.owner_ops.get("org-a", 0) < OPS_PER_OWNER and time.monotonic() < deadline:
            time.sleep(0.01)
        assert agent.owner_ops.get("org-a") == OPS_PER_OWNER
        try:
            a.files_list(engine.agent_id, sandbox_id=theirs)
            raise AssertionError("an owner over its share was served")
        except EngineError as exc:
            assert exc.code == "rate_limited"
        assert b.files_list(engine.agent_id, sandbox_id=theirs) == []  # another owner is served
        a.kill(engine.agent_id, sandbox_id=theirs)  # kill is never refused, even over the share
    finally:
        frozen.cgroup.thaw()
        for t in workers:
            t.join(60)
    for made in results:
        if isinstance(made, dict):
            engine.created.append(made["sandbox_id"])
    assert "org-a" not in agent.owner_ops  # every slot given back
