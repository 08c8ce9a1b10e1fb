"""Block store fixtures: a store on a temp dir, a tree with every kind of entry, a tree fingerprint, and a
real S3-compatible server.

moto's standalone server stands in for AWS S3, a third-party service that cannot run here: the tests talk
to it over HTTP through an ordinary boto3 client (endpoint_url), nothing in boto3 is patched.
"""

import hashlib
import logging
import os
import socket
import stat
import uuid

import boto3
import pytest

from sandboxes.engine.blockstore import BlockStore, S3Backend

OLD_NS = 1_600_000_000_123_456_789  # mtimes well outside the racy window, with sub-second precision


@pytest.fixture
def store(tmp_path):
    with BlockStore(str(tmp_path / "store")) as s:
        yield s


def fingerprint(root) -> dict:
    """Everything restore must reproduce, keyed by relative path (bytes): type, mode, mtime, content."""
    root = os.fsencode(root)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            rec = {"mode": st.st_mode, "mtime_ns": st.st_mtime_ns}
            if stat.S_ISLNK(st.st_mode):
                rec["target"] = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    while block := f.read(1 << 20):
                        h.update(block)
                rec["size"], rec["sha256"] = st.st_size, h.hexdigest()
            out[rel] = rec
    top = os.lstat(root)
    out[b"."] = {"mode": top.st_mode, "mtime_ns": top.st_mtime_ns}
    return out


def set_old_mtimes(root) -> None:
    """Age every entry (deepest first, so parent mtimes stick) so the index may trust it."""
    root = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), ns=(OLD_NS, OLD_NS), follow_symlinks=False)
    os.utime(root, ns=(OLD_NS, OLD_NS))


def build_tree(root, *, big_mb: int = 12) -> None:
    """A workspace with every kind of entry restore must get right."""
    root = os.fsencode(root)
    os.makedirs(root)
    j = lambda *parts: os.path.join(root, *parts)  # noqa: E731
    os.makedirs(j(b"src", b"pkg"))
    os.makedirs(j(b"empty", b"nested-empty"))
    os.makedirs(j(b"locked"))
    with open(j(b"src", b"main.py"), "wb") as f:
        f.write(b"print('hello')\n" * 100)
    with open(j(b"src", b"pkg", b"__init__.py"), "wb"):
        pass
    with open(j(b"src", b"run.sh"), "wb") as f:
        f.write(b"#!/bin/sh\necho hi\n")
    os.chmod(j(b"src", b"run.sh"), 0o755)
    with open(j(b"notes.txt"), "wb") as f:  # above manifest.INLINE_MAX: a chunk of its own
        f.write(b"meeting notes, line after line\n" * 200)
    with open(j(b"secret.txt"), "wb") as f:
        f.write(b"s3cret")
    os.chmod(j(b"secret.txt"), 0o600)
    with open(j(b"setuid-ish"), "wb") as f:
        f.write(b"x")
    os.chmod(j(b"setuid-ish"), 0o4750)
    # Names that are not UTF-8: Latin-1 bytes and a lone 0xff.
    with open(j(b"caf\xe9.txt"), "wb") as f:
        f.write(b"latin-1 name")
    os.makedirs(j(b"dir-\xff"))
    with open(j(b"dir-\xff", b"\xfe\xfd"), "wb") as f:
        f.write(os.urandom(1000))
    os.symlink(b"src/main.py", j(b"link-to-main"))
    os.symlink(b"/nonexistent/dangling", j(b"dangling"))
    os.symlink(b"caf\xe9.txt", j(b"link-\xe9"))
    # A big file: random blocks repeated, so CDC finds the repeats and the pool writes in parallel.
    block = os.urandom(2 << 20)
    with open(j(b"big.bin"), "wb") as f:
        for i in range(big_mb // 2):
            f.write(block if i % 2 else os.urandom(2 << 20))
    # A sparse file: 1 GiB apparent, three small data islands.
    with open(j(b"sparse.img"), "wb") as f:
        f.truncate(1 << 30)
        for off in (0, 300 << 20, (1 << 30) - 4096):
            f.seek(off)
            f.write(os.urandom(4096))
    with open(j(b"locked", b"inside"), "wb") as f:
        f.write(b"in a read-only dir")
    os.chmod(j(b"locked"), 0o500)
    set_old_mtimes(root)


@pytest.fixture
def tree(tmp_path):
    path = tmp_path / "tree"
    build_tree(path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_client(s3_endpoint):
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def bucket(s3_client):
    name = f"mem0-chunks-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_backend(s3_client, bucket):
    def make(**kwargs):
        return S3Backend(bucket, client=s3_client, **kwargs)

    return make
