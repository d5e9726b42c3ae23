"""What a run returns (Result, Comparison) and raises (ContainerError, CellTimeout)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..compare import Comparison
from ..session import Outcome

__all__ = ["CellTimeout", "Comparison", "ContainerError", "Result", "build_result"]


class ContainerError(RuntimeError):
    """The cell's container failed: its setup, a limit, its exit status (check=True)."""

    def __init__(self, kind: str, message: str, result: Result | None = None):
        super().__init__(message)
        self.kind = kind                 # the kernel's name: ExitStatus, LimitExceeded, ...
        self.result = result
        self.status = None if result is None else result.status


class CellTimeout(ContainerError, TimeoutError):
    """The cell ran past its timeout and its container was killed (raised like
    subprocess.TimeoutExpired, whatever `check` says). `.result` has the output so far."""



@dataclass(repr=False)
class Result:
    """What one run did. `ok` means exit status 0 and no failure.

    Read like subprocess.CompletedProcess: `returncode` (the exit status, or minus the
    signal that killed the script) and `check_returncode()`; `status` is the exit status
    as the shell reports it (128 + N for a signal).
    """

    stdout: str
    stderr: str
    status: int | None
    signal: int | None = None
    error: tuple[str, str] | None = None      # (the kernel's error name, message)
    timed_out: bool = False
    interrupted: bool = False
    limit: str | None = None
    mounts: Comparison | None = None
    listings: dict[str, Comparison] = field(default_factory=dict)
    changes: Comparison | None = None
    ns: Comparison | None = None
    views: list[dict] = field(default_factory=list)   # payloads, in %show order
    notes: list[str] = field(default_factory=list)    # views that could not be taken

    @property
    def ok(self) -> bool:
        return self.status == 0 and self.error is None

    @property
    def returncode(self) -> int | None:
        return -self.signal if self.signal else self.status

    def check_returncode(self) -> None:
        """Raise ContainerError (its `.result` is this) unless the run was ok."""
        if self.ok:
            return
        name, message = self.error or ("ExitStatus",
                                       f"the script exited with status {self.status}")
        raise ContainerError(name, message, self)

    def __repr__(self) -> str:
        out = self.stdout if len(self.stdout) <= 60 else self.stdout[:57] + "..."
        kinds = [v.get("kind", "error") for v in self.views]
        return f"Result(status={self.status}, ok={self.ok}, stdout={out!r}, views={kinds})"

    def display(self, widget: bool | None = None) -> None:
        """Show each view as the rootfs kernel does (widget + HTML + text + compare JSON)."""
        from IPython.display import display

        from ..views import view_bundle

        widget = _in_kernel() if widget is None else widget
        for payload in self.views:
            if "error" in payload:
                print(f"rootfs-kernel: {payload['error']}", file=sys.stderr)
                continue
            data, metadata = view_bundle(payload, widget=widget)
            display(data, metadata=metadata, raw=True)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        from html import escape

        from ..views import view_bundle, widget_view

        views = [v for v in self.views if "error" not in v]
        head = f"status {self.status}" + ("" if self.error is None else
                                          f" ({self.error[0]}: {self.error[1]})")
        text = [f"rootfs_kernel.Result: {head}"]
        html = [f"<p><b>rootfs_kernel.Result</b>: {escape(head)}</p>"]
        for name, value in (("stdout", self.stdout), ("stderr", self.stderr)):
            if value:
                text.append(f"{name}:\n{value.rstrip()}")
                html.append(f"<p>{name}:</p><pre>{escape(value)}</pre>")
        # Each view's own text and HTML: a comparison's table, a tree, the limits' figures.
        bundles = [view_bundle(v, widget=False)[0] for v in views]
        text += [b["text/plain"] for b in bundles]
        html += [b["text/html"] for b in bundles]
        data = {"text/plain": "\n".join(text), "text/html": "\n".join(html)}
        if views and _in_kernel():
            import ipywidgets as w

            from ..views.widget import build_widget

            box = w.VBox([w.HTML("\n".join(html[:3]))] + [build_widget(v) for v in views])
            data.update(widget_view(box))
        return data


def _in_kernel() -> bool:
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def build_result(outcome: Outcome, stdout: bytes, stderr: bytes) -> Result:
    run = outcome.run
    res = Result(stdout.decode(errors="replace"), stderr.decode(errors="replace"),
                 status=run.status, signal=run.signal, error=None if outcome.error is None
                 else (outcome.error.name, outcome.error.message),
                 timed_out=run.timed_out, interrupted=run.interrupted, limit=run.limit,
                 views=list(outcome.payloads))
    # The comparisons the kernel computed once (compare.py): the rows here are the ones
    # the payloads were made from.
    for comp in outcome.comparisons:
        if comp.error:
            res.notes.append(comp.error)
        elif comp.kind == "ls":
            res.listings[comp.path] = comp
        else:
            setattr(res, comp.kind, comp)
    return res
