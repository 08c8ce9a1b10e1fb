"""Hostile programs against /proc and /sys: nothing a sandbox reads names a host path, device or the agent's
configuration; host-wide figures are masked or virtualised; nothing there can be written."""

import pytest

from tests.redteam.harness import DENIED, Hostile, absent, denied, each, table
from tests.sdk.live_server import ROOT

# What would betray the host: the checkout, the live server's state directory (a pytest tmp dir), the venv,
# the agent's modules and its per-sandbox layer directories ("layers/<n>": n counts every tenant's sandboxes),
# the host's block devices.
HOST_NEEDLES = (
    str(ROOT),
    "pytest-of-",
    "redteam-var",
    ".venv",
    "sandboxes.engine",
    "var/agent",
    "z-python",
    "/layers/",
    "/dev/vd",
    "/dev/sd",
    "/dev/nvme",
    "/dev/xvd",
    "/dev/root",
)

MASKED = DENIED | {"ENOENT", "EROFS"}

PROGRAMS = [
    Hostile(
        "item8_cmdline_and_exe_no_host_path",
        "read /proc/self/cmdline, /proc/self/exe, sys.executable and sys.path -> no host path, no agent config",
        "print(open('/proc/self/cmdline', 'rb').read().replace(b'\\0', b' ').decode(errors='replace'))\n"
        "print(os.readlink('/proc/self/exe'), sys.executable, sys.prefix, sys.path)",
        absent(*HOST_NEEDLES, '{"name"'),
    ),
    Hostile(
        "item8_mounts_no_host_path",
        "read /proc/self/mounts -> no host path, overlay directory or host block device",
        "print(open('/proc/self/mounts').read())",
        absent(*HOST_NEEDLES),
    ),
    Hostile(
        "item8_mountinfo_no_host_path",
        "read /proc/self/mountinfo and /proc/1/mountinfo -> no host path, overlay directory or host block device",
        "print(open('/proc/self/mountinfo').read())\ntry:\n    print(open('/proc/1/mountinfo').read())\n"
        "except OSError as e:\n    print('pid1', e.errno)",
        absent(*HOST_NEEDLES),
    ),
    Hostile(
        "base_pid1_environ",
        "read /proc/1/environ (the sandbox init, started by the agent) -> EACCES",
        "print('environ', err(lambda: open('/proc/1/environ', 'rb').read()))",
        denied("environ"),
    ),
    Hostile(
        "base_pid1_exe_cwd_root",
        "readlink /proc/1/exe and /proc/1/cwd, list /proc/1/root -> refused",
        "print('exe', err(os.readlink, '/proc/1/exe'))\nprint('cwd', err(os.readlink, '/proc/1/cwd'))\n"
        "print('root', err(os.listdir, '/proc/1/root/'))",
        denied("exe", "cwd", "root"),
    ),
    Hostile(
        "item8_config_gz",
        "read /proc/config.gz (the host kernel's build configuration) -> absent or refused",
        "print('config.gz', err(lambda: open('/proc/config.gz', 'rb').read(1)))",
        each(MASKED, "config.gz"),
    ),
    Hostile(
        "base_kcore_kmem_kmsg",
        "read /proc/kcore, /proc/kmsg, /dev/mem, /dev/kmem, /dev/port -> absent or refused",
        "for p in ('/proc/kcore', '/proc/kmsg', '/dev/mem', '/dev/kmem', '/dev/port'):\n"
        "    print(p, err(lambda: open(p, 'rb').read(16)))",
        each(MASKED, "/proc/kcore", "/proc/kmsg", "/dev/mem"),
    ),
    Hostile(
        "base_kallsyms_no_addresses",
        "read /proc/kallsyms and /proc/modules -> absent, refused, or every address zeroed (no KASLR leak)",
        "for p in ('/proc/kallsyms', '/proc/modules'):\n"
        "    try:\n        text = open(p).read()\n    except OSError as e:\n        print(p, _name(e.errno))\n        continue\n"
        "    leaked = [w for line in text.splitlines() for w in line.split() if w.startswith('0x') or (len(w) == 16 and set(w) <= set('0123456789abcdef'))]\n"
        "    print(p, 'zeroed' if all(int(w, 16) == 0 for w in leaked) else 'LEAKED')",
        each(MASKED | {"zeroed"}, "/proc/kallsyms"),
    ),
    Hostile(
        "item8_meminfo_not_host",
        "read /proc/meminfo -> MemTotal is at most the sandbox's memory limit (2 GiB), not the host's RAM",
        "try:\n    total = int(next(l for l in open('/proc/meminfo') if l.startswith('MemTotal')).split()[1]) * 1024\n"
        "    print('meminfo', 'virtual' if total <= 2 << 30 else f'HOST:{total}')\n"
        "except (OSError, StopIteration) as e:\n    print('meminfo', _name(getattr(e, 'errno', 2)))",
        each(MASKED | {"virtual"}, "meminfo"),
    ),
    Hostile(
        "item8_loadavg_not_host",
        "read /proc/loadavg -> the process total is at most the sandbox's pids limit (64), not the host's",
        "try:\n    fields = open('/proc/loadavg').read().split()\n"
        "    total = int(fields[3].split('/')[1]) if len(fields) > 3 else 0\n"
        "    print('loadavg', 'virtual' if total <= 64 else f'HOST:{total}')\n"
        "except OSError as e:\n    print('loadavg', _name(e.errno))",
        each(MASKED | {"virtual"}, "loadavg"),
    ),
    Hostile(
        "item8_diskstats_hidden",
        "read /proc/diskstats and /proc/partitions -> empty or refused (no host disk activity)",
        "for p in ('/proc/diskstats', '/proc/partitions'):\n"
        "    try:\n        text = open(p).read()\n        print(p, 'empty' if not text.strip() else f'HOST:{len(text)}')\n"
        "    except OSError as e:\n        print(p, _name(e.errno))",
        each(MASKED | {"empty"}, "/proc/diskstats", "/proc/partitions"),
    ),
    Hostile(
        "base_sys_not_mounted",
        "list /sys, /sys/fs/cgroup, /sys/kernel, /sys/class/net -> absent or empty",
        "for p in ('/sys', '/sys/fs/cgroup', '/sys/kernel', '/sys/class/net'):\n"
        "    try:\n        print(p, 'empty' if not os.listdir(p) else 'LISTED')\n"
        "    except OSError as e:\n        print(p, _name(e.errno))",
        each(MASKED | {"empty"}, "/sys", "/sys/fs/cgroup"),
    ),
    Hostile(
        "base_proc_sys_writes",
        "write /proc/sys/kernel/hostname, core_pattern, vm/drop_caches, net/ipv4/ip_forward -> refused",
        "for p in ('/proc/sys/kernel/hostname', '/proc/sys/kernel/core_pattern', '/proc/sys/vm/drop_caches',"
        " '/proc/sys/net/ipv4/ip_forward'):\n"
        "    print(p, err(lambda: open(p, 'w').write('1')))",
        each(MASKED, "/proc/sys/kernel/core_pattern", "/proc/sys/vm/drop_caches"),
    ),
    Hostile(
        "base_sysrq_trigger",
        "write 'h' to /proc/sysrq-trigger and /proc/sys/kernel/sysrq -> refused",
        "for p in ('/proc/sysrq-trigger', '/proc/sys/kernel/sysrq'):\n    print(p, err(lambda: open(p, 'w').write('h')))",
        each(MASKED, "/proc/sysrq-trigger", "/proc/sys/kernel/sysrq"),
    ),
    Hostile(
        "base_no_host_processes",
        "list every process in /proc with its command line -> only the sandbox's own, no agent, server or database",
        "for p in sorted(os.listdir('/proc')):\n    if p.isdigit():\n"
        "        try:\n            print(p, open(f'/proc/{p}/comm').read().strip(), open(f'/proc/{p}/cmdline', 'rb').read()[:200])\n"
        "        except OSError as e:\n            print(p, _name(e.errno))",
        absent("manage.py", "rundemo", "daphne", "postgres", "redis-server", "systemd", "pytest"),
    ),
    Hostile(
        "base_environment_clean",
        "dump os.environ and /proc/self/environ -> none of the agent's or server's variables",
        "print(sorted(os.environ))\ntry:\n    print(open('/proc/self/environ', 'rb').read())\n"
        "except OSError as e:\n    print('environ', _name(e.errno))",
        absent("MEM0_", "DATABASE_URL", "REDIS_URL", "SECRET", "DJANGO", "PYTEST", "VIRTUAL_ENV"),
    ),
    Hostile(
        "item8_cgroup_paths_hidden",
        "read /proc/self/cgroup -> no agent id or host cgroup hierarchy",
        "print(open('/proc/self/cgroup').read())",
        absent("mem0", "process_api", "system.slice", "docker", "kubepods"),
    ),
    Hostile(
        "item8_host_usr_not_bound",
        "look for host tooling under /usr (compilers, package managers, docker, cuda) -> not there",
        "for p in ('/usr/bin/gcc', '/usr/bin/apt-get', '/usr/bin/git', '/usr/bin/curl', '/usr/bin/sudo',"
        " '/usr/local/bin/docker', '/usr/local/bin/terraform', '/usr/local/cuda', '/usr/local/bin/postgres'):\n"
        "    print(p, 'ENOENT' if not os.path.lexists(p) else 'PRESENT')",
        each({"ENOENT"}, "/usr/bin/gcc", "/usr/local/bin/docker"),
    ),
    Hostile(
        "base_open_fds_no_host_path",
        "list /proc/self/fd targets -> no host file among them (only pipes, sockets, /dev/null)",
        "for fd in sorted(os.listdir('/proc/self/fd'), key=int):\n"
        "    try:\n        print(fd, os.readlink(f'/proc/self/fd/{fd}'))\n    except OSError as e:\n        print(fd, _name(e.errno))",
        absent(*HOST_NEEDLES),
    ),
]


@pytest.mark.parametrize("program", table(PROGRAMS))
def test_proc_and_sys(program, arena):
    arena.play(program, "proc")
