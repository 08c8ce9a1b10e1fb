"""Runtime templates: what a sandbox of each runtime preloads, binds read-only and can do.

A ``Runtime`` with a zygote is served by a warm interpreter that forks sandboxes (``can_fork``:
memory is carried on fork). Runtimes without a zygote (Node.js, Go, later) start a fresh process
per sandbox and fork = fresh process + workspace copy, reported as ``memory: "fresh"``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass, field

# Modules every Python sandbox has imported before user code runs (the zygote pays, not the user).
PYTHON_PRELOAD = (
    "json",
    "re",
    "math",
    "random",
    "datetime",
    "collections",
    "itertools",
    "functools",
    "io",
    "time",
    "textwrap",
    "string",
    "typing",
    "dataclasses",
    "pathlib",
    "traceback",
    "decimal",
    "fractions",
    "statistics",
    "csv",
    "base64",
    "hashlib",
    "struct",
    "copy",
    "subprocess",
)


def _package_dirs(names: tuple[str, ...]) -> tuple[str, ...]:
    """Host directories (or single-file modules) holding the given top-level packages."""
    out: list[str] = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = spec.origin
        path = os.path.dirname(origin) if origin.endswith("__init__.py") else origin
        out.append(path)
        libs = path + ".libs"  # auditwheel-vendored shared libraries (numpy.libs, pandas.libs)
        if os.path.isdir(libs):
            out.append(libs)
    return tuple(out)


@dataclass(frozen=True)
class Runtime:
    """A sandbox template. ``ro_binds`` are host paths bound read-only at the same path inside."""

    name: str
    language: str
    preload: tuple[str, ...] = ()
    zygote: bool = True
    ro_binds: tuple[str, ...] = field(default_factory=tuple)
    # Copy-on-write fork of a live interpreter. False: fork = fresh sandbox + workspace copy,
    # reported as memory "fresh" (what Node.js and Go runtimes will do).
    can_fork: bool = True
    # Run by each pooled interpreter before hand-over: it takes the copy-on-write faults of the
    # common first steps (print; numpy calls for python-ml) off the user's first run.
    warmup: str = "print(end='')"


def _python_install() -> tuple[str, ...]:
    # The interpreter's own prefix (stdlib, libpython); the venv's site-packages is not bound
    # wholesale: only the packages a template preloads (the venv also holds the web stack).
    return (os.path.realpath(sys.base_prefix),)


ML_PACKAGES = ("numpy", "pandas", "dateutil", "pytz", "tzdata", "six")


def builtin_runtimes() -> dict[str, Runtime]:
    return {
        "python": Runtime("python", "python", PYTHON_PRELOAD, ro_binds=_python_install()),
        "python-ml": Runtime(
            "python-ml",
            "python",
            PYTHON_PRELOAD + ("numpy", "pandas"),
            ro_binds=_python_install() + _package_dirs(ML_PACKAGES),
            warmup="import numpy, pandas\nnumpy.arange(3).sum()\npandas.Series([1]).sum()\nprint(end='')",
        ),
    }
