"""Hostile code looking for the host through what a sandbox can read (issue 12 item 8): its
command line, environment, mounts, executable, module paths and host-wide /proc figures must
name no host path, no host device and none of the agent's configuration."""

from __future__ import annotations

import json
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYENV = os.path.realpath(sys.base_prefix)

# Everything the interpreter reports about itself and where it came from, as one JSON object.
PROBE = r"""
import gc, json, os, re, sys
def read(path):
    try:
        with open(path, 'rb') as f:
            return f.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError as e:
        return f'<{type(e).__name__}>'
def link(fd):
    try:
        return os.readlink('/proc/self/fd/' + fd)
    except OSError:
        return ''  # the descriptor listdir itself used
strings = set()  # every absolute path (its first three components) held by any object
gc.unfreeze()  # the zygote froze what it had loaded: look at every object and what it holds
todo, done = gc.get_objects(), set()
while todo:
    obj = todo.pop()
    if id(obj) in done:
        continue
    done.add(id(obj))
    if isinstance(obj, str):
        if '/' in obj:
            strings.update(re.findall(r'(?<![\w.])/[\w.+-]+(?:/[\w.+-]+){0,2}', obj))
    elif isinstance(obj, dict):
        todo.extend(obj.keys())
        todo.extend(obj.values())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        todo.extend(obj)
print(json.dumps({
    'cmdline': read('/proc/self/cmdline'),
    'environ': read('/proc/self/environ'),
    'mounts': read('/proc/self/mounts'),
    'mountinfo': read('/proc/self/mountinfo'),
    'init_cmdline': read('/proc/1/cmdline'),
    'cgroup': read('/proc/self/cgroup'),
    'maps': sorted({line.split()[-1] for line in read('/proc/self/maps').splitlines() if '/' in line}),
    'fds': sorted(link(fd) for fd in os.listdir('/proc/self/fd')),
    'orig_argv': sys.orig_argv,
    'exe': os.readlink('/proc/self/exe'),
    'executable': sys.executable,
    'prefix': [sys.prefix, sys.base_prefix, sys.exec_prefix],
    'path': sys.path,
    'argv': sys.argv,
    'files': sorted({getattr(m, '__file__', None) or '' for m in list(sys.modules.values())}),
    'strings': sorted(strings),
    'sysconfig': __import__('sysconfig').get_config_vars(),
    'meminfo': read('/proc/meminfo'),
    'present': [p for p in ('config.gz', 'kcore', 'kallsyms', 'modules', 'keys', 'timer_list', 'sched_debug',
                            'slabinfo', 'interrupts', 'diskstats', 'vmstat', 'zoneinfo', 'buddyinfo',
                            'pagetypeinfo', 'partitions', 'swaps', 'sysrq-trigger', 'cmdline', 'iomem',
                            'sys', 'meminfo', 'loadavg', 'uptime', 'stat', 'acpi', 'scsi', 'pressure')
                if os.path.exists('/proc/' + p)],
    'proc': sorted(p for p in os.listdir('/proc') if not p.isdigit()),
    'cpus': os.cpu_count(),
    'sysconf_pages': os.sysconf('SC_PHYS_PAGES') > 0,
    'loadavg': read('/proc/loadavg'),
    'uptime': read('/proc/uptime'),
    'usr': sorted(os.listdir('/usr')),
    'usr_local': sorted(os.listdir('/usr/local')),
    'site': sorted(n for p in sys.path if p.endswith('site-packages') and os.path.isdir(p) for n in os.listdir(p)),
    'cc': [t for t in ('gcc', 'cc', 'ld', 'pip', 'pip3', 'apt') if os.path.exists('/usr/bin/' + t)],
}))
"""


def _host_device() -> str:
    """The source of the host's root mount (e.g. /dev/vda)."""
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        if fields[4] == "/":
            return line.split(" - ")[1].split()[1]
    raise AssertionError("no root mount")


def _probe(engine, runtime: str) -> dict:
    sid = engine.create(runtime)
    return json.loads(engine.ok(sid, PROBE).splitlines()[-1])


@pytest.mark.parametrize("runtime", ["python", "python-ml"])
def test_nothing_a_sandbox_reads_names_the_host(engine, witness, runtime):
    state_dir = engine.agent.factory.state_dir
    seen = _probe(engine, runtime)
    forbidden = [REPO, PYENV, state_dir, "var/agent", ".venv", "/work/", "/root/.pyenv"]
    device = _host_device()
    if device.startswith("/dev/"):
        forbidden.append(device)
    for key in ("cmdline", "environ", "mounts", "mountinfo", "init_cmdline", "exe", "executable", "prefix", "path",
                "argv", "files", "strings", "sysconfig", "cgroup", "maps", "fds", "orig_argv"):  # fmt: skip
        text = json.dumps(seen[key])
        for bad in forbidden:
            assert bad not in text, f"{key} names the host ({bad!r}): {text[:600]}"
    # The zygote's command line and its JSON description never reach the interpreter's argv.
    assert seen["cmdline"].split() == ["python3"]
    assert "sandboxes.engine" not in seen["cmdline"] + seen["mounts"] + seen["mountinfo"]
    assert '"preload"' not in seen["cmdline"] + seen["environ"]
    # No mount names a device: sources are tmpfs/overlay/proc names, not /dev/...
    sources = {line.split(" - ")[1].split()[1] for line in seen["mountinfo"].splitlines()}
    assert not [s for s in sources if s.startswith("/dev")], sources
    assert seen["exe"] == "/usr/local/bin/python3.11"
    # The agent's cgroup hierarchy (its name, the host's container) is not visible.
    assert {line.rsplit(":", 1)[1] for line in seen["cgroup"].splitlines()} == {"/"}, seen["cgroup"]
    assert seen["executable"].startswith("/usr/local/bin/python3")


@pytest.mark.parametrize("runtime", ["python", "python-ml"])
def test_host_wide_proc_entries_are_absent(engine, witness, runtime):
    seen = _probe(engine, runtime)
    # /proc/config.gz, kcore, diskstats, meminfo, loadavg, sys... do not exist; processes do.
    assert seen["present"] == [], seen["present"]
    assert seen["proc"] == ["self", "thread-self"]
    assert seen["meminfo"] == seen["loadavg"] == seen["uptime"] == "<FileNotFoundError>"
    assert "config.gz" not in seen["mounts"] + seen["mountinfo"]
    assert seen["cpus"] >= 1 and seen["sysconf_pages"]  # what programs ask of the system still answers


def test_only_the_runtimes_files_are_there_and_they_work(engine, witness):
    seen = _probe(engine, "python-ml")
    assert seen["cc"] == []  # no compilers, package managers or host tooling
    assert seen["usr_local"] == ["bin", "lib"]  # not the host's /usr/local (cuda, tools...)
    assert {"numpy", "pandas"} <= set(seen["site"])
    assert not {"django", "redis", "pyseccomp.py", "sandboxes", "pip"} & set(seen["site"])
    assert _probe(engine, "python")["site"] == []
    sid = engine.create("python-ml")
    out = engine.ok(
        sid,
        "import numpy, pandas, subprocess, ctypes.util\n"
        "print(int(numpy.arange(10).sum()), pandas.DataFrame({'a': [1, 2]}).a.sum())\n"
        "print(subprocess.run(['sh', '-c', 'echo shell'], capture_output=True, text=True).stdout.strip())\n"
        "print(ctypes.util.find_library('c'))",
    )
    assert out.splitlines() == ["45 3", "shell", "libc.so.6"]
