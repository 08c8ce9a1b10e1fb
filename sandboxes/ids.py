"""Public ids: a type prefix and 20 random hex digits (`sbx_…`, `exe_…`, `snp_…`), unguessable across tenants."""

import secrets


def new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(10)}"


def new_sandbox_id() -> str:
    return new_id("sbx")


def new_execution_id() -> str:
    return new_id("exe")


def new_snapshot_id() -> str:
    return new_id("snp")
