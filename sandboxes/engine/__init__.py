"""Mem0's sandbox engine: plain Python, never imports Django (DESIGN §2-§4).

Entry points for the Django side: ``transport.make_bus`` -> ``client.EngineClient``; for an
embedded single-host install ``agent.start_embedded_agent``; for a host agent
``python -m sandboxes.engine.agent``.

One concept per module:
  protocol     messages (dataclasses) and stable error codes
  transport/   the bus: in-process and Redis Streams
  client       EngineClient, the only door from Django
  agent        op dispatch and lifecycle of one host's agent
  factory      spawn / fork / release of sandboxes
  supervisor   runs: output streaming, results, deaths, deadlines
  pool         warm pools sized from demand
  zygote       warm interpreters that clone isolated sandboxes
  zygote_root  the zygote's own root: only the runtime's files, at neutral paths
  isolation    the isolation recipe, in order (read this first)
  kernel       the stateful interpreter inside a sandbox; what a fork shares
  layers       overlay workspace layers that make fork O(1) in workspace size
  files        workspace file operations, escape-proof
  cgroups      v1/v2 limits, accounting, freeze, kill
  reaper       the compiled PID-1 init
  runtimes     runtime templates (python, python-ml; fresh-fork runtimes later)
  linux, wire  syscall wrappers; control-socket framing
  iohub        the agent's single I/O thread
  blockstore/  content-addressed snapshot store (separate owner)
"""
