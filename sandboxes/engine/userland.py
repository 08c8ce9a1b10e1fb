"""A minimal shell userland for commands: Debian's static busybox, with links for a curated set of
its applets, in the runtime's /usr/bin (so in every sandbox root, read-only, bound with /usr).

The basic tools ``zygote_root.TOOLS`` copies from the host (dash as ``sh``, coreutils, grep, sed)
stay as they are; busybox fills in what a shell user expects beside them (``yes``, ``seq``,
``find``, ``xargs``, ``awk``, ``ps``, ``tar``...). Static, so it needs no library of the root.
Applets that only make sense with privileges or a network (mount, ip, wget, nsenter, su...) are
not linked: they would fail anyway (no capability, no interface), and a smaller surface reads
better. Without busybox on the host (``make sysdeps`` installs ``busybox-static``) nothing is added.
"""

from __future__ import annotations

import os
import shutil

BUSYBOX = "/usr/bin/busybox"
APPLETS = (
    "awk", "base64", "basename", "bc", "bunzip2", "bzcat", "bzip2", "cmp", "dc", "diff", "dirname",
    "du", "egrep", "expand", "expr", "factor", "fgrep", "find", "fold", "getopt", "gunzip", "gzip",
    "hexdump", "kill", "less", "ln", "md5sum", "mkfifo", "mktemp", "more", "nl", "nproc", "od",
    "paste", "patch", "pidof", "ps", "readlink", "realpath", "rev", "rmdir", "seq", "sha1sum",
    "sha256sum", "sha512sum", "shuf", "stat", "strings", "tac", "tar", "tee", "time", "timeout",
    "truncate", "unexpand", "unlink", "unxz", "unzip", "usleep", "vi", "watch", "which", "whoami",
    "xargs", "xxd", "xz", "xzcat", "yes", "zcat", "chmod", "dd", "install", "split", "gzip",
)  # fmt: skip


def install(lay, bin_dir: str = "/usr/bin") -> list[str]:
    """Copy busybox into ``lay`` (a ``zygote_root.Layout``) and link the applets it has that the
    root lacks; the applets linked (none without busybox on the host)."""
    host = shutil.which("busybox", path="/usr/bin:/bin") or (BUSYBOX if os.access(BUSYBOX, os.X_OK) else None)
    if host is None:
        return []
    lay.copy(os.path.realpath(host), f"{bin_dir}/busybox")
    linked = []
    for applet in dict.fromkeys(APPLETS):
        if not os.path.lexists(f"{lay.root}{bin_dir}/{applet}"):
            lay.symlink("busybox", f"{bin_dir}/{applet}")
            linked.append(applet)
    return linked
