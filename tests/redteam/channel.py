"""What the control-channel programs share: helpers run inside the sandbox to write on every descriptor it
holds, and the outcome a run must have after user code wrote something hostile there."""

from tests.redteam.harness import out

# Helpers inside the sandbox: the descriptors it holds beyond stdio (the channel is among them, whatever its
# number), the old wire framing (4-byte big-endian length + JSON), and the execution id the agent sent,
# found on the interpreter's stack.
CHANNEL = r"""
import json, os, struct, sys
def held_fds():
    fds = []
    for fd in range(3, 64):
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.append(fd)
    return fds

def frame(body):
    return struct.pack(">I", len(body)) + body

def write_all(data, fds=None):
    for fd in fds if fds is not None else held_fds():
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            pass

def execution_id():
    f = sys._getframe(0)
    while f is not None:
        for v in list(f.f_locals.values()):
            if isinstance(v, dict) and str(v.get("id", "")).startswith("exe_"):
                return v["id"]
        f = f.f_back
    return None
"""


def finished_or_killed(ex: dict) -> None:
    """Either the run went on to its real end (the marker printed, status succeeded) or the agent ended the
    sandbox for the violation (status killed). Never succeeded without the marker: the run was ended early,
    or its real output was dropped with what user code wrote (both make the result a lie)."""
    if ex["status"] == "succeeded":
        assert ex["stdout"].endswith("finished\n"), (
            f"succeeded after {ex['wall_ms']} ms without its last output (ended early, or its output dropped): "
            f"{out(ex)[-500:]!r}"
        )
    else:
        assert ex["status"] == "killed", f"ended {ex['status']}/{ex['limit']}: {out(ex)[-500:]!r}"
