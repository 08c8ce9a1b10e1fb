"""Hostile programs against the filesystem: only /workspace, /tmp and /dev/shm are writable (nosuid, nodev);
links and /proc/self/root lead nowhere outside the sandbox; symlinks never carry the files API out of it."""

import pytest

from tests.redteam.harness import DENIED, Hostile, each, error_code, table
from tests.sdk.live_server import ROOT

REFUSED = DENIED | {"EROFS", "ENOENT"}


def symlink_escape_through_files_api(arena) -> None:
    """Symlinks to /etc/passwd, / and /proc/self/root in /workspace; read through them with the files API -> 4xx."""
    sid = arena.fresh()
    ex = arena.attacker.run(
        sid,
        "import os\nos.symlink('/etc/passwd', '/workspace/passwd')\n"
        "os.symlink('/', '/workspace/rootlink')\nos.symlink('/proc/self/root', '/workspace/selfroot')\n"
        "os.symlink('../../../../../../etc/passwd', '/workspace/relative')",
    )
    assert ex["status"] == "succeeded", ex
    for path in (
        "passwd",
        "rootlink/etc/passwd",
        "selfroot/etc/hostname",
        "relative",
        "rootlink/proc/1/environ",
    ):
        r = arena.attacker.http.get(f"/sandboxes/{sid}/files/{path}")
        assert 400 <= r.status_code < 500 and error_code(r), (
            f"GET {path}: {r.status_code} {r.content[:200]!r}"
        )
        assert b"root:x:0:0" not in r.content
    r = arena.attacker.http.put(f"/sandboxes/{sid}/files/rootlink/tmp/planted", content=b"x")
    assert 400 <= r.status_code < 500 and error_code(r), (
        f"PUT through a symlink: {r.status_code} {r.text[:200]}"
    )


PROGRAMS = [
    Hostile(
        "base_write_outside_writable_dirs",
        "create a file in /, /etc, /usr, /usr/local, /home, /root, /proc, /dev, /bin, /lib -> EROFS/EACCES",
        "for d in ('/', '/etc', '/usr', '/usr/local', '/home', '/root', '/proc', '/dev', '/bin', '/lib'):\n"
        "    print(d, err(lambda: open(os.path.join(d, 'planted'), 'w').write('x')))",
        each(REFUSED, "/", "/etc", "/usr", "/root", "/dev"),
    ),
    Hostile(
        "base_etc_passwd",
        "append a root user to /etc/passwd, rename over it, unlink it -> refused; it still has its two users",
        "open('/tmp/p', 'w').write('evil::0:0::/:/bin/sh\\n')\n"
        "print('append', err(lambda: open('/etc/passwd', 'a').write('evil::0:0::/:/bin/sh\\n')))\n"
        "print('rename', err(os.rename, '/tmp/p', '/etc/passwd'))\nprint('unlink', err(os.unlink, '/etc/passwd'))\n"
        "print('passwd', 'unchanged' if 'evil' not in open('/etc/passwd').read() else 'WRITTEN')",
        each(REFUSED | {"EXDEV", "unchanged"}, "append", "rename", "unlink", "passwd"),
    ),
    Hostile(
        "base_usr_and_runtime_write",
        "write into the Python stdlib (os.py), site-packages and /usr/bin -> refused",
        "import sysconfig\nfor p in (os.__file__, sysconfig.get_paths()['purelib'] + '/evil.py', '/usr/bin/evil'):\n"
        "    print(p.rsplit('/', 1)[-1], err(lambda: open(p, 'a').write('x')))",
        each(REFUSED, "os.py", "evil.py", "evil"),
    ),
    Hostile(
        "base_writable_mounts_nosuid_nodev",
        "check the writable mounts for a setuid or device-node foothold -> /workspace, /tmp, /dev/shm are nosuid,nodev",
        "for p in ('/workspace', '/tmp', '/dev/shm'):\n    f = os.statvfs(p).f_flag\n"
        "    print(p, 'nosuid,nodev' if f & os.ST_NOSUID and f & os.ST_NODEV else 'SUID_OR_DEV_ALLOWED')",
        each({"nosuid,nodev"}, "/workspace", "/tmp", "/dev/shm"),
    ),
    Hostile(
        "base_hardlinks_out",
        "hard-link /proc/self/environ, /dev/null and /etc/passwd into /workspace or /tmp -> refused",
        "for src, dst in (('/proc/self/environ', '/workspace/e'), ('/dev/null', '/tmp/n'), ('/etc/passwd', '/workspace/p')):\n"
        "    print(src, err(os.link, src, dst))",
        each(REFUSED | {"EXDEV"}, "/proc/self/environ", "/dev/null", "/etc/passwd"),
    ),
    Hostile(
        "base_proc_self_root_traversal",
        "walk /proc/self/root/.., /proc/self/cwd/../.., /.. to the host checkout and /etc/shadow -> nothing there",
        f"for p in ('/proc/self/root/../../{ROOT}', '/proc/self/cwd/../../../../{ROOT}', '/../../..{ROOT}',"
        " '/proc/self/root/etc/shadow', '/../etc/shadow', '/proc/1/root/etc/passwd'):\n"
        "    print(p, 'ENOENT' if not os.path.exists(p) else 'PRESENT')\n"
        "print('dotdot', 'same' if sorted(os.listdir('/..')) == sorted(os.listdir('/')) else 'DIFFERENT')",
        each(REFUSED | {"same"}, "dotdot", "/proc/self/root/etc/shadow"),
    ),
    Hostile(
        "base_dev_has_only_safe_nodes",
        "list /dev for device nodes to open -> only null, zero, full, random, urandom (plus fd, shm)",
        "extra = sorted(set(os.listdir('/dev')) - {'null', 'zero', 'full', 'random', 'urandom', 'fd', 'shm', 'stdin',"
        " 'stdout', 'stderr', 'pts', 'ptmx'})\nprint('extra', 'ENOENT' if not extra else extra)",
        each({"ENOENT"}, "extra"),
    ),
    Hostile(
        "base_symlink_escape_files_api",
        "symlinks in /workspace to /etc/passwd, /, /proc/self/root, read and written through the files API -> 4xx",
        attack=symlink_escape_through_files_api,
    ),
]


@pytest.mark.parametrize("program", table(PROGRAMS))
def test_files_and_links(program, arena):
    arena.play(program, "files")
