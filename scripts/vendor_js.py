"""Vendor the console's third-party JavaScript into static/vendor/, pinned and checksummed.

    python scripts/vendor_js.py build   # npm ci (versions and sha512 integrity from package-lock.json),
                                        # bundle CodeMirror 6 with esbuild, copy Cytoscape.js, dagre and xterm.js,
                                        # write static/vendor/MANIFEST.json (sha256 of every file)
    python scripts/vendor_js.py check   # verify static/vendor/ against MANIFEST.json (no network)

The built files are committed, so `make run` and `make test` need neither node nor the npm registry; the
console serves them from /static/vendor/ and never loads code from the internet at run time. `build` needs
node and npm and reaches the npm registry; run it after changing scripts/vendor/package.json.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "scripts" / "vendor"
TARGET = ROOT / "static" / "vendor"
MANIFEST = TARGET / "MANIFEST.json"

# Files copied as published: (package, path in the package, name under static/vendor/).
COPIED = [
    ("cytoscape", "dist/cytoscape.min.js", "cytoscape.min.js"),
    ("dagre", "dist/dagre.min.js", "dagre.min.js"),
    ("cytoscape-dagre", "cytoscape-dagre.js", "cytoscape-dagre.js"),
    ("@xterm/xterm", "lib/xterm.mjs", "xterm.mjs"),  # the terminal, for PTY sessions
    ("@xterm/xterm", "css/xterm.css", "xterm.css"),
    ("@xterm/addon-fit", "lib/addon-fit.mjs", "xterm-addon-fit.mjs"),
]
BUNDLED = ("codemirror-entry.js", "codemirror.js")  # esbuild: one minified ES module


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_version(name: str) -> str:
    return json.loads((SOURCE / "node_modules" / name / "package.json").read_text())["version"]


def build() -> None:
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SOURCE, check=True)
    TARGET.mkdir(parents=True, exist_ok=True)
    files = {}
    for package, inner, name in COPIED:
        # source maps are not vendored: drop the comment that would send browsers looking for one
        text = (SOURCE / "node_modules" / package / inner).read_bytes()
        lines = [line for line in text.splitlines(keepends=True) if not line.startswith(b"//# sourceMappingURL=")]
        (TARGET / name).write_bytes(b"".join(lines))
        files[name] = {"from": f"{package}@{package_version(package)}/{inner}"}
    entry, name = BUNDLED
    subprocess.run([str(SOURCE / "node_modules" / ".bin" / "esbuild"), entry, "--bundle", "--format=esm",
                    "--minify", "--legal-comments=none", f"--outfile={TARGET / name}"], cwd=SOURCE, check=True)
    pinned = ", ".join(f"{p}@{package_version(p)}" for p in ("codemirror", "@codemirror/view",
                                                             "@codemirror/lang-python", "esbuild"))
    files[name] = {"from": f"esbuild bundle of scripts/vendor/{entry} ({pinned})"}
    for name, entry_info in files.items():
        entry_info["sha256"] = sha256(TARGET / name)
    MANIFEST.write_text(json.dumps(files, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(files)} files and {MANIFEST.relative_to(ROOT)}")


def check() -> list[str]:
    """Problems found in static/vendor/ (empty when every file is there with its recorded sha256)."""
    if not MANIFEST.exists():
        return [f"{MANIFEST.relative_to(ROOT)} is missing"]
    problems = []
    for name, info in json.loads(MANIFEST.read_text()).items():
        path = TARGET / name
        if not path.exists():
            problems.append(f"{name} is missing")
        elif sha256(path) != info["sha256"]:
            problems.append(f"{name} does not match its sha256 {info['sha256']}")
    return problems


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "check"
    if command == "build":
        build()
    elif command == "check":
        found = check()
        print("\n".join(found) or "static/vendor matches MANIFEST.json")
        sys.exit(1 if found else 0)
    else:
        sys.exit(__doc__)
