"""The red-team harness: a hostile program, the two tenants it runs between, and the health checks after it.

Each hostile program runs through the public REST API of a live stack (``manage.py rundemo``: Daphne, the
embedded fork-agent, real isolation) as the *attacker* tenant. After every program, whatever its own
outcome, ``Arena.assert_healthy`` checks that the agent still creates a sandbox and runs code in it, and
that the *bystander* tenant's long-lived sandbox still holds its state and answers within its timeout.

Program ids start with the issue-12 item they cover (``item2_…``); ``base_…`` programs check what DESIGN §4
already promises (they held on 426d6cf); ``finding3_…`` covers finding 3 of the security review.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

# The errno names (or the fatal signal) by which a policy refuses a call: seccomp's ERRNO/KILL actions,
# a missing capability, a permission check. EINVAL and friends are not here: they would mean the call
# reached the kernel's argument checks, i.e. nothing refused it.
DENIED = frozenset({"EPERM", "EACCES", "ENOSYS", "SIGSYS"})

MiB = 1 << 20


@dataclass(frozen=True)
class Hostile:
    """One hostile program: the code the attacker runs and what the safe outcome is.

    Either ``code`` + ``expect`` (one run; ``expect`` asserts on the execution's JSON) or ``attack``
    (several steps through the API, given the ``Arena``).
    """

    id: str
    doc: str  # what it tries -> the safe outcome asserted
    code: str = ""
    expect: Callable[[dict], None] | None = None
    attack: Callable[[Arena], None] | None = None
    timeout_s: float = 5.0
    fresh: bool = False  # a sandbox of its own, deleted afterwards (the attack may end or taint it)
    limits: dict | None = None  # create the fresh sandbox with these per-sandbox limits

    def param(self):
        return pytest.param(self, id=self.id)


def table(programs: list[Hostile]) -> list:
    ids = [p.id for p in programs]
    assert len(ids) == len(set(ids)), "duplicate program ids"
    return [p.param() for p in programs]


# Helpers defined inside the sandbox before each one-run program's code.
PRELUDE = r'''
import ctypes as _ct, errno as _errno, os, signal as _signal, sys
_libc = _ct.CDLL(None, use_errno=True)
_libc.syscall.restype = _ct.c_long
_keep = []

def buf(data=b"", size=0):
    """Address of a C buffer holding ``data`` (or ``size`` zero bytes), kept alive for the run."""
    b = _ct.create_string_buffer(data, max(size, len(data) + 1))
    _keep.append(b)
    return _ct.addressof(b)

def _name(e):
    return _errno.errorcode.get(e, str(e))

def sc(nr, *args):
    """A raw syscall: 'OK' if it succeeded, else its errno's name."""
    _ct.set_errno(0)
    r = _libc.syscall(_ct.c_long(nr), *[_ct.c_long(a) for a in args])
    return "OK" if r != -1 else _name(_ct.get_errno())

def err(fn, *args):
    """'OK' if fn(*args) returned, else the OSError's errno name."""
    try:
        fn(*args)
        return "OK"
    except OSError as e:
        return _name(e.errno) if e.errno else type(e).__name__

def probe(fn, *args):
    """fn(*args) in a child process, so that a call that succeeds cannot change this interpreter
    and a SIGSYS kills only the child: its str() result, or the name of the signal that killed it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            res = str(fn(*args))
        except BaseException as e:
            res = type(e).__name__
        os.write(w, res.encode()[:200])
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    _, st = os.waitpid(pid, 0)
    if os.WIFSIGNALED(st):
        return _signal.Signals(os.WTERMSIG(st)).name
    return data.decode(errors="replace")
'''


# -- expectations on one execution's JSON


def out(ex: dict) -> str:
    return (ex.get("stdout") or "") + (ex.get("stderr") or "")


def verdicts(ex: dict) -> dict[str, str]:
    """``label RESULT`` lines printed by a program."""
    found = {}
    for line in (ex.get("stdout") or "").splitlines():
        label, _, result = line.strip().rpartition(" ")
        if label:
            found[label] = result
    return found


def succeeded(ex: dict) -> None:
    assert ex["status"] == "succeeded", f"run {ex['status']}/{ex.get('limit')}: {out(ex)[-1500:]!r}"


def each(allowed: frozenset | set, *labels: str) -> Callable[[dict], None]:
    """The run succeeded and every ``label RESULT`` line it printed has a RESULT in ``allowed``
    (and every label in ``labels`` was printed)."""

    def check(ex: dict) -> None:
        succeeded(ex)
        got = verdicts(ex)
        assert got, f"no verdicts printed: {out(ex)[-1500:]!r}"
        missing = [label for label in labels if label not in got]
        assert not missing, f"not printed: {missing}; output {out(ex)[-1500:]!r}"
        bad = {label: result for label, result in got.items() if result not in allowed}
        assert not bad, f"not refused (want one of {sorted(allowed)}): {bad}"

    return check


def denied(*labels: str) -> Callable[[dict], None]:
    return each(DENIED, *labels)


def prints(expected: str) -> Callable[[dict], None]:
    """The run succeeded and its stdout is exactly ``expected``."""

    def check(ex: dict) -> None:
        succeeded(ex)
        assert ex["stdout"] == expected, f"stdout {ex['stdout'][-1500:]!r}, stderr {ex['stderr'][-800:]!r}"

    return check


def ended(status: str, limit: str | None) -> Callable[[dict], None]:
    def check(ex: dict) -> None:
        assert (ex["status"], ex["limit"]) == (status, limit), (
            f"run ended {ex['status']}/{ex['limit']} (want {status}/{limit}) after {ex.get('wall_ms')} ms: "
            f"{out(ex)[-800:]!r}"
        )

    return check


def absent(*needles: str) -> Callable[[dict], None]:
    """The run succeeded and none of ``needles`` appears in what it printed."""

    def check(ex: dict) -> None:
        succeeded(ex)
        text = out(ex)
        assert text.strip(), "the program printed nothing"
        shown = [n for n in needles if n in text]
        assert not shown, f"visible: {shown} in {text[:1500]!r}"

    return check


# -- the API, as a tenant sees it


class Tenant:
    """One organisation's API key against the live stack."""

    def __init__(self, base_url: str, key: str, name: str):
        self.name = name
        self.http = httpx.Client(
            base_url=f"{base_url}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def create(self, **body) -> dict:
        r = self.http.post("/sandboxes", json={"runtime": "python", **body})
        assert r.status_code == 201, f"{self.name}: create answered {r.status_code} {r.text[:500]}"
        return r.json()

    def start(self, sandbox_id: str, code: str, timeout_s: float = 5.0, wait: bool = True) -> httpx.Response:
        return self.http.post(
            f"/sandboxes/{sandbox_id}/executions",
            json={"code": code, "timeout_s": timeout_s, "wait": wait},
            timeout=timeout_s + 60,
        )

    def run(self, sandbox_id: str, code: str, timeout_s: float = 5.0) -> dict:
        r = self.start(sandbox_id, code, timeout_s)
        assert r.status_code == 200, f"{self.name}: run answered {r.status_code} {r.text[:500]}"
        return r.json()

    def sandbox(self, sandbox_id: str) -> dict:
        r = self.http.get(f"/sandboxes/{sandbox_id}")
        assert r.status_code == 200, f"{self.name}: GET sandbox answered {r.status_code} {r.text[:300]}"
        return r.json()

    def delete(self, sandbox_id: str) -> None:
        self.http.delete(f"/sandboxes/{sandbox_id}")


def error_code(r: httpx.Response) -> str | None:
    try:
        return r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class Arena:
    """The live stack, the attacker, the bystander and its sandbox, for one program."""

    base_url: str
    server_pid: int
    attacker: Tenant
    bystander: Tenant
    bystander_sandbox: str
    bystander_secret: str
    shared: dict = field(default_factory=dict)  # the attacker's reusable sandbox per test module
    made: list = field(default_factory=list)

    def fresh(self, **body) -> str:
        """A new attacker sandbox, deleted after the program."""
        sid = self.attacker.create(**body)["id"]
        self.made.append(sid)
        return sid

    def reusable(self, group: str) -> str:
        """The attacker's sandbox shared by the programs of one group (replaced once a program ends it)."""
        sid = self.shared.get(group)
        if sid is None:
            sid = self.shared[group] = self.attacker.create()["id"]
        return sid

    def play(self, program: Hostile, group: str) -> None:
        """Run one hostile program, then check the stack is healthy whatever the program's outcome."""
        try:
            if program.attack is not None:
                program.attack(self)
            else:
                if program.limits:
                    sid = self.fresh(limits=program.limits)
                else:
                    sid = self.fresh() if program.fresh else self.reusable(group)
                program.expect(self.attacker.run(sid, PRELUDE + program.code, program.timeout_s))
        finally:
            self.clean_up(group)
            self.assert_healthy()

    def clean_up(self, group: str) -> None:
        """Delete the program's sandboxes, and the group's shared one if the program ended it."""
        for sid in self.made:
            self.attacker.delete(sid)
        self.made.clear()
        sid = self.shared.get(group)
        if sid is not None and self.attacker.sandbox(sid)["state"] != "running":
            self.attacker.delete(sid)
            del self.shared[group]

    def assert_healthy(self) -> None:
        """The agent still answers (a new sandbox runs code) and the bystander's sandbox kept its state."""
        sid = self.attacker.create()["id"]
        try:
            ex = self.attacker.run(sid, "print(6 * 7)", timeout_s=5)
            assert (ex["status"], ex["stdout"]) == ("succeeded", "42\n"), f"agent unhealthy: {ex}"
        finally:
            self.attacker.delete(sid)
        ex = self.bystander.run(
            self.bystander_sandbox, "print(secret, open('/workspace/state.txt').read())", timeout_s=5
        )
        assert (ex["status"], ex["stdout"]) == ("succeeded", f"{self.bystander_secret} kept\n"), (
            f"bystander's sandbox hurt: {ex['status']}/{ex['limit']} {out(ex)[-500:]!r}"
        )


def new_secret() -> str:
    return f"bystander-{secrets.token_hex(4)}"
