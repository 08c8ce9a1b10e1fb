"""The runtimes Mem0 offers; agents advertise which of them they can run."""

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    language: str
    description: str
    can_fork_memory: bool


RUNTIMES = {
    "python": RuntimeInfo("python", "python", "CPython 3.11 with the standard library warm", True),
    "python-ml": RuntimeInfo("python-ml", "python", "CPython 3.11 with numpy and pandas already imported", True),
    "go": RuntimeInfo("go", "go", "Go (Debian's golang): each run compiles and runs a main package", False),
    "node": RuntimeInfo("node", "node", "Node.js 20: top-level let/const/function and await persist across runs", False),
}


def runtime_catalog(available: set[str]) -> list[dict]:
    return [{**asdict(info), "available": name in available} for name, info in RUNTIMES.items()]
