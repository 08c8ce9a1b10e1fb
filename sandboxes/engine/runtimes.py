"""Runtime templates: what a sandbox of each runtime preloads, binds read-only and can do.

A ``Runtime`` with a zygote is served by a warm interpreter that forks sandboxes (``can_fork``:
memory is carried on fork). Runtimes that cannot fork (``can_fork`` false: Go, whose sandboxes run
the Python control loop of ``go_runtime.GoKernel`` and build each run's program; Node.js, whose
sandboxes run a node process beside the Python control loop of ``node_runtime.NodeKernel``) fork as a fresh
sandbox + workspace copy, reported as ``memory: "fresh"``.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Runtime:
    """A sandbox template. ``packages`` are the top-level packages (of the agent's environment)
    a sandbox can import besides the standard library: ``zygote_root`` puts each under the
    interpreter's site-packages inside. A template names no host path: it is the zygote's
    whole configuration, and the zygote's memory is every sandbox's memory."""

    name: str
    language: str
    preload: tuple[str, ...] = ()
    zygote: bool = True
    packages: tuple[str, ...] = field(default_factory=tuple)
    # Copy-on-write fork of a live interpreter. False: fork = fresh sandbox + workspace copy,
    # reported as memory "fresh" (what Node.js and Go runtimes will do).
    can_fork: bool = True
    # The kernel's children are the runtime's own long-lived process (node, ``node_runtime``): an
    # interrupt (timeout, output cap, cancel) kills every other process of the sandbox but spares
    # them, and the kernel passes the SIGINT on, so the state of earlier runs can survive it.
    resident: bool = False
    # Run by each pooled interpreter before hand-over: it takes the copy-on-write faults of the
    # common first steps (print; numpy calls for python-ml) off the user's first run.
    warmup: str = "print(end='')"

    @classmethod
    def from_dict(cls, spec: dict) -> Runtime:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})


ML_PACKAGES = (
    "numpy",
    "pandas",
    "dateutil",
    "pytz",
    "tzdata",
    "six",
    # matplotlib and what it imports (Agg backend only: no GUI toolkit)
    "matplotlib",
    "mpl_toolkits",
    "contourpy",
    "cycler",
    "kiwisolver",
    "PIL",
    "pyparsing",
    "packaging",
    "fontTools",
)
# The first figure of a sandbox costs what it costs any later one: the zygote has imported pyplot (Agg)
# and drawn and saved a figure, so fonts, the font cache and the PNG writer are loaded and shared.
ML_WARM_FIGURE = (
    "import io, matplotlib.pyplot as plt\n"
    "fig = plt.figure()\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title('warm')\n"
    "fig.savefig(io.BytesIO(), format='png')\nplt.close('all')\n"
)


def builtin_runtimes() -> dict[str, Runtime]:
    return {
        "python": Runtime("python", "python", PYTHON_PRELOAD),
        "python-ml": Runtime(
            "python-ml",
            "python",
            PYTHON_PRELOAD + ("numpy", "pandas", "matplotlib", "matplotlib.pyplot"),
            packages=ML_PACKAGES,
            warmup="import numpy, pandas\nnumpy.arange(3).sum()\npandas.Series([1]).sum()\nprint(end='')\n"
            + ML_WARM_FIGURE,
        ),
        # Go: each run compiles and runs a main package (``go_runtime``); no state but files, so a
        # fork is a fresh sandbox with a copy of the workspace. Served when the toolchain is installed.
        "go": Runtime("go", "go", can_fork=False, warmup=""),
        # Node.js: a node process per sandbox, started in the pool (``node_runtime``); its heap cannot
        # be forked, so a fork is a fresh sandbox with a copy of the workspace. The warm-up compiles
        # the paths of a first run (evaluation, top-level await, console). Served when node is installed.
        "node": Runtime("node", "node", can_fork=False, resident=True, warmup="await null; console.log()"),
    }
