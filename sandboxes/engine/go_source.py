"""The Go source a run builds: the user's code as a ``main`` package (inside the sandbox, plain text).

A run's code is either a whole program (it starts with ``package main``) or a snippet, which is wrapped:
  * top-level declarations (``import``, ``type``, ``func name``, methods) stay at package level;
  * everything else (statements, ``var``/``const``, closures) becomes the body of ``func main()``;
  * a standard package the snippet uses as ``name.X`` and never names otherwise (no variable, field,
    parameter or label called ``name``) is imported for it: then the import is certainly used and
    certainly that package, so adding it can never break a snippet that would have compiled.
Each piece keeps the user's line and column numbers through ``//line main.go:L:C`` directives, so
compiler messages and panic traces point at the code as it was sent.

Errors: ``GoSourceError`` (with a message for the user) when the code is not a main package.
"""

from __future__ import annotations

import re

FILENAME = "main.go"

# Short name -> import path, for snippets that use a package without importing it.
STANDARD_PACKAGES = {
    "atomic": "sync/atomic",
    "base64": "encoding/base64",
    "big": "math/big",
    "bits": "math/bits",
    "bufio": "bufio",
    "bytes": "bytes",
    "cmplx": "math/cmplx",
    "context": "context",
    "csv": "encoding/csv",
    "errors": "errors",
    "exec": "os/exec",
    "filepath": "path/filepath",
    "fmt": "fmt",
    "heap": "container/heap",
    "hex": "encoding/hex",
    "http": "net/http",
    "io": "io",
    "json": "encoding/json",
    "list": "container/list",
    "log": "log",
    "math": "math",
    "net": "net",
    "os": "os",
    "rand": "math/rand",
    "reflect": "reflect",
    "regexp": "regexp",
    "runtime": "runtime",
    "sha256": "crypto/sha256",
    "sort": "sort",
    "strconv": "strconv",
    "strings": "strings",
    "sync": "sync",
    "syscall": "syscall",
    "time": "time",
    "unicode": "unicode",
    "url": "net/url",
    "utf8": "unicode/utf8",
}


class GoSourceError(ValueError):
    """The code cannot be a Go main package; the message is for the user."""


# One token of Go source, enough to find top-level declarations: comments and string, raw-string
# and rune literals are whole tokens (nothing inside them counts), identifiers and single
# punctuation characters; whitespace other than newlines is skipped.
_TOKEN = re.compile(
    r"(?P<comment>//[^\n]*|/\*.*?\*/)"
    r"|(?P<string>\"(?:\\.|[^\"\\\n])*\"?|`[^`]*`?|'(?:\\.|[^'\\\n])*'?)"
    r"|(?P<ident>[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)"
    r"|(?P<number>[0-9][0-9A-Za-z_.]*)"
    r"|(?P<newline>\n)"
    r"|(?P<space>[ \t\r\f\v]+)"
    r"|(?P<punct>.)",
    re.S,
)
_OPEN, _CLOSE = "([{", ")]}"


class _Token:
    __slots__ = ("kind", "text", "start", "end", "line", "col", "first_on_line")

    def __init__(self, kind: str, text: str, start: int, end: int, line: int, col: int, first: bool):
        self.kind, self.text, self.start, self.end = kind, text, start, end
        self.line, self.col, self.first_on_line = line, col, first


def _tokens(code: str) -> list[_Token]:
    out: list[_Token] = []
    line, line_start, first = 1, 0, True
    for m in _TOKEN.finditer(code):
        kind = m.lastgroup
        text = m.group()
        if kind != "space":
            out.append(_Token(kind, text, m.start(), m.end(), line, m.start() - line_start + 1, first))
            first = kind == "newline"
        newlines = text.count("\n")
        if newlines:
            line += newlines
            line_start = m.start() + text.rindex("\n") + 1
            first = True
    return out


def _significant(tokens: list[_Token]) -> list[_Token]:
    return [t for t in tokens if t.kind not in ("comment", "newline")]


def package_name(code: str) -> str | None:
    """The package clause's name, or None when the code has none (a snippet)."""
    sig = _significant(_tokens(code))
    if len(sig) >= 2 and sig[0].kind == "ident" and sig[0].text == "package":
        return sig[1].text if sig[1].kind == "ident" else ""
    return None


def _line_directive(tok: _Token) -> str:
    return f"//line {FILENAME}:{tok.line}:{tok.col}\n"


def _declaration_end(tokens: list[_Token], i: int) -> int:
    """Index just past the declaration starting at tokens[i]: the first newline (or ';') at
    bracket depth 0 after it."""
    depth = 0
    for j in range(i, len(tokens)):
        t = tokens[j]
        if t.kind == "punct" and t.text in _OPEN:
            depth += 1
        elif t.kind == "punct" and t.text in _CLOSE:
            depth = max(0, depth - 1)
        elif depth == 0 and (t.kind == "newline" or t.text == ";"):
            return j + 1
    return len(tokens)


def _is_declaration(tokens: list[_Token], i: int) -> bool:
    """A package-level declaration starts at tokens[i] (the first token of its line)."""
    t = tokens[i]
    if t.kind != "ident" or not t.first_on_line or t.text not in ("import", "type", "func"):
        return False
    if t.text != "func":
        return True
    nxt = [x for x in tokens[i + 1 : i + 64] if x.kind not in ("comment", "newline")]
    if not nxt:
        return False
    if nxt[0].kind == "ident":
        return True  # func name(...)
    if nxt[0].text != "(":
        return False
    depth = 0
    for k, x in enumerate(nxt):  # func (recv) name(...) is a method; func (...) {...} a literal
        if x.text == "(":
            depth += 1
        elif x.text == ")":
            depth -= 1
            if depth == 0:
                return k + 1 < len(nxt) and nxt[k + 1].kind == "ident"
    return False


def _imported_names(decls: list[tuple[int, int]], tokens: list[_Token]) -> set[str]:
    names: set[str] = set()
    for start, end in decls:
        if tokens[start].text != "import":
            continue
        sig = _significant(tokens[start + 1 : end])
        for k, t in enumerate(sig):
            if t.kind == "string":
                alias = sig[k - 1] if k and sig[k - 1].kind == "ident" else None
                names.add(alias.text if alias else t.text.strip('"`').rsplit("/", 1)[-1])
    return names


def _used_packages(tokens: list[_Token], already: set[str]) -> list[str]:
    """Standard packages used only as ``name.X`` (never declared or used otherwise) and not imported."""
    sig = _significant(tokens)
    selector, other = set(), set()
    for k, t in enumerate(sig):
        if t.kind != "ident" or t.text not in STANDARD_PACKAGES:
            continue
        after_dot = k > 0 and sig[k - 1].text == "."
        before_dot = k + 1 < len(sig) and sig[k + 1].text == "."
        (selector if before_dot and not after_dot else other).add(t.text)
    return sorted(selector - other - already)


def main_package(code: str) -> str:
    """The source of ``main.go`` for ``code`` (see the module docstring)."""
    name = package_name(code)
    if name is not None:
        if name != "main":
            raise GoSourceError(f"a Go run is a main package: found 'package {name}'")
        return f"//line {FILENAME}:1:1\n{code}"
    tokens = _tokens(code)
    decls: list[tuple[int, int]] = []
    i = 0
    while i < len(tokens):
        if _is_declaration(tokens, i):
            end = _declaration_end(tokens, i)
            decls.append((i, end))
            i = end
        else:
            i += 1
    imports = [d for d in decls if tokens[d[0]].text == "import"]
    others = [d for d in decls if tokens[d[0]].text != "import"]
    added = _used_packages(tokens, _imported_names(imports, tokens))
    parts = ["package main\n\n"]
    for start, end in imports:
        parts.append(_line_directive(tokens[start]) + _text(code, tokens, start, end))
    if added:
        parts.append(
            "import (\n"
            + "".join(f'\t"{path}"\n' for path in sorted(STANDARD_PACKAGES[n] for n in added))
            + ")\n"
        )
    for start, end in others:
        parts.append(_line_directive(tokens[start]) + _text(code, tokens, start, end))
    parts.append("func main() {\n")
    pos = 0
    for start, end in [*decls, (len(tokens), len(tokens))]:
        body = [t for t in tokens[pos:start] if t.kind != "newline"]
        if body:
            parts.append(_line_directive(body[0]))
            parts.append(code[body[0].start : tokens[start - 1].end].rstrip("\n") + "\n")
        pos = end
    parts.append("}\n")
    return "".join(parts)


def _text(code: str, tokens: list[_Token], start: int, end: int) -> str:
    text = code[tokens[start].start : tokens[end - 1].end]
    return text if text.endswith("\n") else text + "\n"
