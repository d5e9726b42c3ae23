"""The kernel-wide settings, defined once (pure).

Each setting has a traitlet of the kernel (`--RootfsKernel.NAME=VALUE` in the
kernelspec's argv, or a Jupyter config file), an environment variable read when the
traitlet is not given, a keyword of the Python API's `Sandbox` where it applies there (the
same name), a default, and what it does. kernel.py makes its traitlets from this table,
the README's table is markdown() (tests/unit/test_settings.py), and `Sandbox`'s
docstring names every keyword.

A wrong value is never a traceback: resolve() says which setting is wrong and what it
takes, the kernel starts and every cell says so (the front-end would otherwise restart a
kernel that dies at start, again and again), and the API raises SettingError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .cell import parse_limits, parse_size, visible
from .ids import DEFAULT_COUNT, DEFAULT_FIRST, IdRange

# Every container cell's bounds unless the kernel's setting or the cell's %limit line
# says otherwise (README: Default bounds): processes, what it may write, and what the
# kernel sends the notebook of its output (output.py). Memory only on request.
DEFAULT_BOUNDS = "pids=1024 disk=1g output=64m"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class SettingError(ValueError):
    """A kernel-wide setting's value is wrong; the message names it and what it takes."""


def _limits(text: str) -> dict[str, float | None]:
    """DEFAULT_BOUNDS, then the keys `text` names (KEY=none lifts one)."""
    return {**dict(parse_limits(DEFAULT_BOUNDS.split())), **dict(parse_limits(text.split()))}


def _flag(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(f"takes 1 or 0 (true or false, yes or no, on or off), got "
                     f"{visible(text, 40)!r}")


def _ids(text: str) -> IdRange:
    return IdRange.parse(text)


def _store_size(text: str) -> str:
    """The image store's bound as the store takes it (images/store.py): checked here."""
    store_bound(text)
    return text


def store_bound(text: str) -> int | None:
    """`20g` -> bytes; `none` -> None (no bound)."""
    if text.strip().lower() == "none":
        return None
    size = parse_size(text)
    if size < 1 << 20:
        raise ValueError(f"{visible(text, 40)!r} is smaller than any image (at least 1m)")
    return size


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"takes a whole number, got {visible(text, 40)!r}") from None
    if n < 1:
        raise ValueError(f"takes 1 or more, got {n}")
    return n


@dataclass(frozen=True)
class Setting:
    name: str          # the traitlet (--RootfsKernel.NAME) and the API keyword
    env: str           # the environment variable read when the traitlet is not given
    kind: str          # the traitlet's type: "text" | "flag" | "count"
    default: str
    doc: str           # what it does (the traitlet's help, the README's table)
    parse: Callable[[str], object]   # text -> the value the kernel takes, or ValueError
    example: str       # a right value, for the message about a wrong one
    api: bool = True   # also a keyword of the Python API's Sandbox
    # The value a wrong setting leaves the kernel with while it refuses cells, when not
    # the default: a wrong host_access leaves it locked.
    if_wrong: str | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("default_limits", "ROOTFS_KERNEL_LIMITS", "text", DEFAULT_BOUNDS,
            "Every cell's bounds, e.g. `pids=512 memory=2g cpu=1 output=16m`: the keys given "
            "replace the default's, `KEY=none` lifts one; a cell's %limit line replaces "
            "these",
            _limits, example="pids=512 memory=2g"),
    Setting("prepare_next", "ROOTFS_KERNEL_PREPARE", "flag", "1",
            "Make the next cell's container while the kernel is idle (the last cell's "
            "setup; thrown away when the host's mounts change); 0: every container is made "
            "when its cell comes",
            _flag, example="0"),
    Setting("id_range", "ROOTFS_KERNEL_ID_RANGE", "text", f"{DEFAULT_FIRST}:{DEFAULT_COUNT}",
            "Root mode: the host ids a cell's root and users are, FIRST:COUNT (COUNT at "
            "least 65535); a cell's root is never the host's root",
            _ids, example=f"{DEFAULT_FIRST}:{DEFAULT_COUNT}"),
    Setting("host_access", "ROOTFS_KERNEL_HOST_ACCESS", "flag", "1",
            "Allow the lines that reach the host (%%host, %root none, %bind, %propagation "
            "shared, %show ls PATH HOST_PATH, %seccomp off); 0: a locked kernel that refuses "
            "them (`rootfs-kernel install --locked`). The Python API runs as its caller: "
            "never locked",
            _flag, api=False, example="0", if_wrong="0"),
    Setting("store_size", "ROOTFS_KERNEL_STORE_SIZE", "text", "10g",
            "The most the image store may hold (its layers as tar archives, each shared "
            "layer once), e.g. `20g`, or `none`: a build, import or %export past it fails "
            "and stores nothing",
            _store_size, example="20g"),
    Setting("max_live_views", "ROOTFS_KERNEL_LIVE_VIEWS", "count", "50",
            "How many `%show` widgets stay live, each holding its comparison in the kernel; "
            "older ones are closed, their saved HTML (and the JupyterLab renderer's data) "
            "still show",
            _count, api=False, example="20"),
)
BY_NAME = {s.name: s for s in SETTINGS}


def resolve(given: Mapping[str, object], environ: Mapping[str, str],
            where: Callable[[Setting], str], *, api: bool = False
            ) -> tuple[dict[str, object], list[str]]:
    """Every setting's value: `given` (the traitlets set in the argv or a config file, or
    the API's keywords), else its environment variable, else its default; `api`: the
    API's settings only. Returns the values and, for each setting that is wrong, a line
    saying which, how it was given (`where`: the traitlet or keyword; the variable) and
    what it takes; a wrong one is left at its default (if_wrong) meanwhile."""
    values: dict[str, object] = {}
    wrong: list[str] = []
    for s in SETTINGS:
        if api and not s.api:
            continue
        if s.name in given:
            raw, named = given[s.name], where(s)
            text = ("1" if raw else "0") if isinstance(raw, bool) else str(raw)
        elif environ.get(s.env, "").strip():
            text, named = environ[s.env], s.env
        else:
            text, named = s.default, ""
        try:
            values[s.name] = s.parse(text)
        except ValueError as err:
            wrong.append(f"{named}={visible(text, 80)!r}: {err}; for example "
                         f"{named}={s.example!r}")
            values[s.name] = s.parse(s.if_wrong or s.default)
    return values, wrong


def refusal(wrong: list[str]) -> str:
    """What every cell of a kernel started with a wrong setting says."""
    return ("the kernel was started with a wrong setting, so it runs no cell: "
            + "; ".join(wrong) + ". Set it right where the kernel is started (Jupyter's "
            "environment, or the kernelspec's kernel.json: its env or argv) and restart "
            "the kernel")


def markdown() -> str:
    """The README's table of the settings."""
    rows = ["| setting (`--RootfsKernel.NAME`) | environment variable | Python API | default "
            "| what it does |", "| --- | --- | --- | --- | --- |"]
    for s in SETTINGS:
        api = f"`Sandbox({s.name}=...)`" if s.api else "—"
        rows.append(f"| `{s.name}` | `{s.env}` | {api} | `{s.default}` | {s.doc} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":   # python -m rootfs_kernel.settings: the README's table
    print(markdown(), end="")
