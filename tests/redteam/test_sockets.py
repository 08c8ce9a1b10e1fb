"""Hostile programs with sockets: only AF_UNIX, AF_INET, AF_INET6 and route netlink open; no path to the host's
services, the metadata endpoint, DNS or the internet; nothing the sandbox listens on is reachable from the host."""

import secrets
import socket
from urllib.parse import urlsplit

import pytest

from tests.redteam.harness import DENIED, Hostile, each, table

# How a socket family outside the allow-list may be refused: by the filter (EPERM/EACCES/ENOSYS/SIGSYS, or
# EAFNOSUPPORT, which seccomp filters commonly return so libraries fall back cleanly).
FAMILY_REFUSED = DENIED | {"EAFNOSUPPORT"}
# How a connection with no route out is refused: loopback down or absent, or nothing listening on it.
NO_ROUTE = DENIED | {"ENETUNREACH", "EHOSTUNREACH", "ECONNREFUSED", "ETIMEDOUT", "EADDRNOTAVAIL"}

CONNECT = r"""
import socket
def connect(family, addr, kind=socket.SOCK_STREAM):
    s = socket.socket(family, kind)
    s.settimeout(2)
    try:
        s.connect(addr)
        return "OK"
    except socket.timeout:
        return "ETIMEDOUT"
    finally:
        s.close()
"""

OPEN = r"""
import socket
def opens(family, kind, proto=0):
    socket.socket(family, kind, proto).close()
"""


def loopback_to_host_services(arena) -> None:
    """connect to 127.0.0.1 on the live server's port, Redis, PostgreSQL, 8000 and ::1 -> no route, never OK."""
    port = urlsplit(arena.base_url).port
    code = CONNECT + "".join(
        f"print('port {p}', err(connect, socket.AF_INET, ('127.0.0.1', {p})))\n"
        for p in (port, 6379, 5432, 8000)
    )
    code += f"print('ipv6 {port}', err(connect, socket.AF_INET6, ('::1', {port})))\n"
    each(NO_ROUTE, f"port {port}", "port 6379", "port 5432")(
        arena.attacker.run(arena.reusable("sockets"), code, 20)
    )


def listener_unreachable_from_host(arena) -> None:
    """Listen on 0.0.0.0:<port> inside; the host's connect to 127.0.0.1:<port> is refused (separate network)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sid = arena.reusable("sockets")
    ex = arena.attacker.run(
        sid,
        f"import socket\nlistener = socket.socket()\nlistener.bind(('0.0.0.0', {port}))\n"
        "listener.listen()\nprint('listening')",
    )
    assert ex["status"] == "succeeded", ex
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
    arena.attacker.run(sid, "listener.close()")


def abstract_unix_socket_to_host(arena) -> None:
    """The host listens on an abstract unix socket; the sandbox cannot connect to it (own network namespace)."""
    name = f"\0mem0-redteam-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX) as host_side:
        host_side.bind(name)
        host_side.listen()
        code = CONNECT + f"print('abstract', err(connect, socket.AF_UNIX, {name!r}))"
        each(NO_ROUTE | {"ENOENT"}, "abstract")(arena.attacker.run(arena.reusable("sockets"), code))


PROGRAMS = [
    Hostile(
        "item4_af_vsock",
        "socket(AF_VSOCK) stream and datagram (a channel to the hypervisor) -> refused",
        OPEN
        + "print('vsock stream', err(opens, 40, socket.SOCK_STREAM))\nprint('vsock dgram', err(opens, 40, socket.SOCK_DGRAM))",
        each(FAMILY_REFUSED, "vsock stream", "vsock dgram"),
    ),
    Hostile(
        "item4_af_packet",
        "socket(AF_PACKET, SOCK_RAW, ETH_P_ALL) (sniff or forge frames) -> refused",
        OPEN
        + "print('packet', err(opens, 17, socket.SOCK_RAW, 0x0300))\nprint('packet dgram', err(opens, 17, socket.SOCK_DGRAM, 0x0300))",
        each(FAMILY_REFUSED, "packet", "packet dgram"),
    ),
    Hostile(
        "item4_af_alg",
        "socket(AF_ALG, SOCK_SEQPACKET) (kernel crypto API, a frequent exploit entry) -> refused",
        OPEN + "print('alg', err(opens, 38, socket.SOCK_SEQPACKET))",
        each(FAMILY_REFUSED, "alg"),
    ),
    Hostile(
        "item4_netlink_beyond_route",
        "netlink sockets other than NETLINK_ROUTE (audit, uevent, netfilter, xfrm, sock_diag...) -> refused",
        OPEN
        + "for proto in range(1, 23):\n    print('netlink', proto, err(opens, 16, socket.SOCK_RAW, proto))",
        each(FAMILY_REFUSED | {"EPROTONOSUPPORT"}, "netlink 4", "netlink 9", "netlink 12", "netlink 15"),
    ),
    Hostile(
        "item4_families_outside_allowlist",
        "every family 0..45 but UNIX/INET/INET6/NETLINK, in every socket type -> all refused",
        OPEN + "for fam in range(46):\n    if fam in (1, 2, 10, 16):\n        continue\n"
        "    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET, socket.SOCK_RAW):\n"
        "        print('family', fam, int(kind), err(opens, fam, kind))",
        each(
            FAMILY_REFUSED | {"EPROTONOSUPPORT", "ESOCKTNOSUPPORT", "EINVAL", "EPROTOTYPE", "ENODEV"},
            "family 40 1",
        ),
    ),
    Hostile(
        "item4_raw_inet",
        "raw IPv4/IPv6 ICMP sockets (craft packets) -> refused",
        OPEN + "print('raw4', err(opens, socket.AF_INET, socket.SOCK_RAW, 1))\n"
        "print('raw6', err(opens, socket.AF_INET6, socket.SOCK_RAW, 58))",
        each(FAMILY_REFUSED, "raw4", "raw6"),
    ),
    Hostile(
        "base_loopback_to_host_services",
        "connect to the server, Redis, PostgreSQL on 127.0.0.1/::1 -> no route",
        attack=loopback_to_host_services,
    ),
    Hostile(
        "base_cloud_metadata",
        "connect to 169.254.169.254:80 (cloud metadata) and fd00:ec2::254 -> no route",
        CONNECT + "print('imds', err(connect, socket.AF_INET, ('169.254.169.254', 80)))\n"
        "print('imds6', err(connect, socket.AF_INET6, ('fd00:ec2::254', 80)))",
        each(NO_ROUTE, "imds", "imds6"),
        timeout_s=10,
    ),
    Hostile(
        "base_internet_egress",
        "TCP to 1.1.1.1:443 and UDP sendto 8.8.8.8:53 -> no route",
        CONNECT + "print('tcp', err(connect, socket.AF_INET, ('1.1.1.1', 443)))\n"
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nprint('udp', err(u.sendto, b'x', ('8.8.8.8', 53)))",
        each(NO_ROUTE, "tcp", "udp"),
        timeout_s=10,
    ),
    Hostile(
        "base_dns_lookup",
        "getaddrinfo('example.com') and ('localhost') over the network -> no resolver reachable",
        "import socket\ntry:\n    socket.getaddrinfo('example.com', 80)\n    print('dns OK')\nexcept socket.gaierror:\n"
        "    print('dns gaierror')",
        each({"gaierror"}, "dns"),
        timeout_s=10,
    ),
    Hostile(
        "base_listener_unreachable_from_host",
        "listen on 0.0.0.0 inside -> the host cannot connect to it",
        attack=listener_unreachable_from_host,
    ),
    Hostile(
        "base_abstract_unix_socket_to_host",
        "connect to a host abstract unix socket -> refused",
        attack=abstract_unix_socket_to_host,
    ),
    Hostile(
        "base_host_unix_socket_paths",
        "connect to the Docker, PostgreSQL, Redis and systemd unix sockets by path -> not there",
        CONNECT + "for p in ('/var/run/docker.sock', '/run/postgresql/.s.PGSQL.5432', '/tmp/.s.PGSQL.5432',"
        " '/var/run/redis/redis-server.sock', '/run/systemd/private'):\n"
        "    print(p, err(connect, socket.AF_UNIX, p))",
        each(NO_ROUTE | {"ENOENT"}, "/var/run/docker.sock", "/tmp/.s.PGSQL.5432"),
    ),
    Hostile(
        "base_only_loopback_interface",
        "list the network interfaces -> only lo, and it carries no address that routes out",
        "import socket\nprint('interfaces', ','.join(name for _, name in socket.if_nameindex()))",
        each({"lo"}, "interfaces"),
    ),
]


@pytest.mark.parametrize("program", table(PROGRAMS))
def test_sockets(program, arena):
    arena.play(program, "sockets")
