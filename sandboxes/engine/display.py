"""Rich results inside the interpreter, as a notebook kernel gives them (Jupyter's display protocol).

Runs in the sandbox's interpreter, never in the agent; what it sends is checked there (``results.py``).
  * The value of a snippet's last expression: the snippet is run as IPython does, all but the last
    statement as ``exec``, a final expression statement as ``eval``; a value other than ``None`` is
    kept in ``_`` and published.
  * ``display(*objs)`` (a builtin in every sandbox) publishes each object.
  * matplotlib figures (Agg backend, preloaded by ``python-ml``) are published as ``image/png`` by
    ``plt.show()`` and, still open at the end of a run, then; either way they are closed.
  * An object is published as ``text/plain`` (its repr) plus what its ``_repr_*_`` methods give
    (``_repr_html_`` of a pandas DataFrame, ``_repr_png_``, ``_repr_svg_``, ``_repr_json_``...) or its
    ``_repr_mimebundle_``, keeping only allowed MIME types (``results.MIME_TYPES``); a method that
    raises is skipped. Bigger than ``results.MAX_RESULT_BYTES``: a short text/plain note instead.
  * An uncaught exception: ``{name, value, traceback}`` (traceback as lines, bounded).
"""

from __future__ import annotations

import ast
import base64
import builtins
import io
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable

from .results import MAX_ERROR_BYTES, MAX_RESULT_BYTES, MAX_TRACEBACK_LINES, MIME_TYPES, encode_frames

REPR_METHODS = (
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_latex_", "text/latex"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_json_", "application/json"),
)
MAX_PLAIN_CHARS = 64 << 10
MAX_LINE_CHARS = 4 << 10


class Display:
    """Publishes results on the framed pipe: ``write(bytes)`` writes one frame atomically."""

    def __init__(
        self, write: Callable[[bytes], None], frame_payload: int, mark: int, before: Callable[[], None]
    ):
        self.write = write
        self.frame_payload = frame_payload
        self.mark = mark
        self.before = before  # flushes sys.stdout/sys.stderr, so a result comes after earlier prints
        self.patched_pyplot = None
        # One message's frames go out together: display() from two threads must not interleave parts.
        self.lock = threading.Lock()
        # Publishing is open only during a run (``begin``/``end``): a message from a thread between runs is
        # dropped here, so none can straddle two runs (the agent would see a malformed one).
        self.active = False
        os.register_at_fork(after_in_child=self._new_lock)  # a fork may copy it held by another thread

    def _new_lock(self) -> None:
        self.lock = threading.Lock()

    def begin(self) -> None:
        self.active = True

    def end(self) -> None:
        """No message is in flight once this returns, and none starts until the next ``begin``."""
        with self.lock:
            self.active = False

    # -- running a snippet

    def run_cell(self, code: str, user_globals: dict) -> None:
        """Run ``code`` in ``user_globals``; publish the last expression's value; raises what it raises."""
        tree = ast.parse(code, "<run>", "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        self.hook_pyplot()
        exec(compile(tree, "<run>", "exec"), user_globals)
        if last is not None:
            value = eval(compile(last, "<run>", "eval"), user_globals)
            if value is not None:
                user_globals["_"] = value
                self.display(value)
        self.flush_figures()

    def display(self, *objs) -> None:
        """The ``display()`` builtin: publish each object's representations."""
        for obj in objs:
            self.publish(self.bundle(obj))

    def error(self, exc: BaseException, tb) -> None:
        """Publish an uncaught exception (``tb``: its traceback from the user's first frame)."""
        lines = [line[:MAX_LINE_CHARS] for line in traceback.format_exception(type(exc), exc, tb)]
        if len(lines) > MAX_TRACEBACK_LINES:
            lines = lines[:1] + lines[-(MAX_TRACEBACK_LINES - 1) :]
        name, value = type(exc).__name__[:200], _safe_str(exc)[: MAX_ERROR_BYTES // 4]
        while lines and len(name) + len(value) + sum(map(len, lines)) > MAX_ERROR_BYTES:
            lines.pop(1 if len(lines) > 1 else 0)
        self._send({"type": "error", "name": name, "value": value, "traceback": lines})

    # -- representations

    def bundle(self, obj) -> dict:
        data: dict = {}
        figure = _figure_class()
        if figure is not None and isinstance(obj, figure):
            data["image/png"] = _figure_png(obj)
        mimebundle = getattr(type(obj), "_repr_mimebundle_", None)
        if mimebundle is not None:
            try:
                got = mimebundle(obj)
                got = got[0] if isinstance(got, tuple) else got
                if isinstance(got, dict):
                    data.update({k: v for k, v in got.items() if k in MIME_TYPES})
            except Exception:
                pass
        for method, mime in REPR_METHODS:
            fn = getattr(type(obj), method, None)
            if fn is None or mime in data:
                continue
            try:
                value = fn(obj)
            except Exception:
                continue
            if value is None:
                continue
            if isinstance(value, tuple):  # (data, metadata)
                value = value[0]
            if mime in ("image/png", "image/jpeg") and isinstance(value, bytes):
                value = base64.b64encode(value).decode()
            data[mime] = value
        data.setdefault("text/plain", _safe_repr(obj))
        return {k: (_text(v) if k != "application/json" else v) for k, v in data.items()}

    def publish(self, data: dict) -> None:
        self._send({"type": "result", "data": data})

    def _send(self, msg: dict) -> None:
        self.before()
        frames = encode_frames(msg, self.frame_payload, self.mark)
        if sum(len(f) for f in frames) > MAX_RESULT_BYTES:
            note = (
                f"<a result of {sum(len(f) for f in frames)} bytes: over the {MAX_RESULT_BYTES} byte limit>"
            )
            frames = encode_frames(
                {"type": "result", "data": {"text/plain": note}}, self.frame_payload, self.mark
            )
        # SIGINT (a timeout, a cancel) is held off while the frames go out: a message cut short would
        # run into the next one's parts and the agent would end the sandbox for a malformed result.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            with self.lock:
                if not self.active:
                    return
                for frame in frames:
                    self.write(frame)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    # -- matplotlib

    def hook_pyplot(self) -> None:
        """``plt.show()`` publishes the open figures (the Agg backend shows nothing by itself)."""
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None or self.patched_pyplot is plt:
            return
        self.patched_pyplot = plt
        plt.show = lambda *args, **kwargs: self.flush_figures()

    def flush_figures(self) -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return
        self.hook_pyplot()
        try:
            for num in plt.get_fignums():
                fig = plt.figure(num)
                self.publish({"image/png": _figure_png(fig), "text/plain": _safe_repr(fig)})
        finally:
            plt.close("all")


def _figure_class():
    module = sys.modules.get("matplotlib.figure")
    return getattr(module, "Figure", None)


def _figure_png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # not bbox_inches="tight": it draws the figure twice
    return base64.b64encode(buf.getvalue()).decode()


def _text(value) -> str:
    return value if isinstance(value, str) else _safe_str(value)


def _safe_repr(obj) -> str:
    try:
        text = repr(obj)
    except Exception as exc:
        text = f"<repr failed: {type(exc).__name__}>"
    return text if len(text) <= MAX_PLAIN_CHARS else text[:MAX_PLAIN_CHARS] + "..."


def _safe_str(obj) -> str:
    try:
        return str(obj)
    except Exception:
        return f"<{type(obj).__name__}>"


def install(display: Display) -> None:
    """``display`` as a builtin, and the Agg backend for matplotlib (no GUI in a sandbox)."""
    builtins.display = display.display
    os.environ.setdefault("MPLBACKEND", "Agg")
