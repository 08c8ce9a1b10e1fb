"""The runtimes Mem0 offers; agents advertise which of them they can run, with each one's version,
whether its fork carries memory and its warm pool size (engine/runtime_info.py, in their heartbeats)."""

from dataclasses import dataclass


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


def runtime_catalog(agents) -> list[dict]:
    """Every runtime offered here or served by a live agent (`agents`: the registry's AgentInfo list), with
    `version` and `fork_memory` ("carried": a fork copies the interpreter's memory; "fresh": a new process
    with a copy of the workspace) as the agents report them, `pool_size` (warm sandboxes, summed over the
    agents), `agents` (how many serve it) and `available`."""
    live: dict[str, dict] = {}
    for agent in agents:
        if not agent.alive:
            continue
        templates = {t["name"]: t for t in agent.templates if isinstance(t, dict) and isinstance(t.get("name"), str)}
        for name in agent.runtimes:
            template = templates.get(name, {})
            entry = live.setdefault(name, {"language": template.get("language"), "version": template.get("version"),
                                           "fork_memory": template.get("fork_memory"), "pool_size": 0, "agents": 0})
            pool = template.get("pool_size")
            entry["pool_size"] += pool if isinstance(pool, int) and pool >= 0 else 0
            entry["agents"] += 1
    catalog = []
    for name in [*RUNTIMES, *sorted(set(live) - set(RUNTIMES))]:
        info, seen = RUNTIMES.get(name), live.get(name, {})
        fork_memory = seen.get("fork_memory") or ("carried" if info and info.can_fork_memory else "fresh")
        catalog.append({"name": name, "language": seen.get("language") or (info.language if info else "unknown"),
                        "description": info.description if info else "", "version": seen.get("version"),
                        "fork_memory": fork_memory, "can_fork_memory": fork_memory == "carried",
                        "pool_size": seen.get("pool_size", 0), "agents": seen.get("agents", 0),
                        "available": name in live})
    return catalog
