"""One notebook's worth of cells: parse -> plan -> run -> compare, front-end agnostic.

The Jupyter kernel (kernel.py) and the Python API (api/) both drive a Session; it
holds what lives between cells: the sandbox helper, the image store, `%env` values
and the `%keep` chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from . import cell, dirfd, hostfacts, labels, settings
from .ids import IdRange
from .images import ImageError, ImageStore, upper
from .linux import EXIT_CANNOT_RUN
from .sandbox.client import CellRun, SandboxClient, SandboxError
from .sandbox.plan import COMPILER_PATHS, Plan, bounds, compile_plan, plan_for

if TYPE_CHECKING:
    from . import compare

GRACE_SECONDS = 1.0
# Parsed cells and their plans, kept for a cell run again as it is (both are pure
# functions of what the keys hold): the same cell text, %env values and image.
CACHED_CELLS = 64

Sink = Callable[[bytes], None]
Progress = Callable[[float | None, str], None]   # (fraction or None, message)


@dataclass(frozen=True)
class Failure:
    """Why a cell failed. `name` is what Jupyter shows as the error's name: HeaderError,
    ImageError, SandboxError (before the container ran), CompileError (%%c),
    ContainerError (its setup), LimitExceeded, Timeout, Interrupted, ExitStatus.
    `exception` is the error as raised, where one was (HeaderError, ImageError,
    SandboxError), so a caller can raise it again as it was (the Python API)."""

    name: str
    message: str
    exception: Exception | None = None

    @classmethod
    def of(cls, err: Exception) -> Failure:
        return cls(type(err).__name__, str(err), err)


@dataclass
class Outcome:
    """What a cell did; `error` says why it failed, when it did."""

    run: CellRun | None = None
    payloads: list[dict] = field(default_factory=list)
    comparisons: list[compare.Comparison] = field(default_factory=list)  # same order
    error: Failure | None = None
    help: str | None = None

    @property
    def status(self) -> int | None:
        return None if self.run is None else self.run.status


class Session:
    def __init__(self, store: ImageStore | None = None,
                 default_limits: Mapping[str, float | None] | None = None,
                 prepare: bool = True, ids: IdRange | None = None,
                 host_access: bool = True, sandbox: SandboxClient | None = None) -> None:
        # Every cell's bounds: the kernel-wide ones (settings.py: the default bounds and
        # what the default_limits setting changes of them), then each cell's own %limit
        # line. The output budget is the kernel's to keep (output_budget), not the
        # container's.
        self.default_limits = dict(default_limits if default_limits is not None else
                                   settings.BY_NAME["default_limits"].parse(""))
        self.default_output = self.default_limits.pop("output", None)
        # False: a locked kernel, whose parser refuses every line that reaches the host.
        self.host_access = host_access
        # A started helper's client, unless the caller hands its own (the unit tests' has
        # no helper behind it); prepare and ids are the new client's.
        if sandbox is None:
            sandbox = SandboxClient(prepare=prepare, ids=ids, explain=hostfacts.cause)
            # Refused (e.g. a runtime directory someone else made): the kernel still
            # starts, and each cell says why and tries again (execute).
            with contextlib.suppress(SandboxError):
                sandbox.start()
        self.sandbox = sandbox
        self.store = store or ImageStore()
        self.user_env: dict[str, str] = {}
        self.keep_image: str | None = None      # image of the running %keep chain
        self.kept_size = 0                      # what its kept layer takes (upper.cost)
        self._progress: Progress | None = None
        self._images: dict[str, tuple[tuple, object]] = {}   # name -> (_stamp, Image)
        self._c_count = 0
        self._said: set[str] = set()
        self._specs: dict[tuple, cell.CellSpec] = {}
        self._plans: dict[tuple, Plan] = {}
        # %label NAME: what a later `%show ... vs NAME` compares with, by name.
        self.labels: dict[str, labels.Labelled] = {}

    def close(self) -> None:
        self.sandbox.close()

    def output_budget(self, code: str) -> float | None:
        """How many bytes of output the kernel may show of this cell (None: no bound): its
        own %limit output=, else the kernel's. A cell whose header is wrong shows none
        of its own (execute says why)."""
        try:
            spec = self._parse(code)
        except cell.HeaderError:
            return self.default_output
        return dict(spec.limits).get("output", self.default_output)

    async def execute(self, code: str, stdout: Sink, stderr: Sink, *,
                      interrupt: asyncio.Event | None = None,
                      progress: Progress | None = None, notices: Sink | None = None
                      ) -> Outcome:
        """Run one cell. `progress` reports image builds (called from a worker thread);
        `notices` takes what the kernel says about the cell (default: stderr)."""
        def notice(text: str) -> None:
            (notices or stderr)(f"rootfs-kernel: {text}\n".encode())

        self._progress = progress
        try:
            spec = self._parse(code)
            self._check_export(spec)
            labels.check(spec, self.labels)
        except cell.HeaderError as err:
            return Outcome(error=Failure.of(err))
        if self.sandbox.gone():   # it died between cells: this cell gets a new one
            how, lost = self._restart_helper()
            notice(f"the sandbox helper had gone away ({how}); a new one runs this cell{lost}")
        out = Outcome(help=cell.help_text() if spec.help else None)
        # A cell of only %env / %help lines runs nothing; any other header line (an
        # image to build, a bind to check, a view) is carried out even without a script.
        if not spec.script.strip() and \
                replace(spec, env=(), help=False, limits=()) == \
                cell.CellSpec(script=spec.script, script_line=spec.script_line):
            self.user_env.update(spec.env)
            return out
        if self.sandbox.refused is not None:   # at the kernel's start: again, or say why
            try:
                self.sandbox.start()
            except SandboxError as err:
                return replace(out, error=Failure.of(err))
        c_files: list[str] = []
        c_program = self._c_program() if spec.c_flags is not None else None
        try:
            # A labelled cell also takes what a later `vs` reads (labels.shows_for).
            plan = await self._plan(replace(spec, show=labels.shows_for(spec)), notice,
                                    c_program)
            if c_program is not None:
                c_files = await self._compile_c(spec, c_program, stderr, interrupt)
        except (cell.HeaderError, ImageError) as err:
            return replace(out, error=Failure.of(err))
        except _CompileError as err:
            return replace(out, error=Failure("CompileError", str(err)))
        except SandboxError as err:   # the helper died under the compile or a drop
            return replace(out, error=Failure("SandboxError", self._sandbox_failure(err), err))
        self.user_env.update(spec.env)
        # %keep and %export copy the cell's upper layer out of its tmpfs once every
        # process of the cell is gone (its init reports the cgroup's counters itself).
        copies = spec.keep or bool(spec.export)
        try:
            wait_exit = spec.host or copies or self.keep_image is not None
            run = await self.sandbox.run(plan, stdout, stderr, timeout=spec.timeout,
                                         interrupt=interrupt, grace=GRACE_SECONDS,
                                         wait_exit=wait_exit, upper=copies)
        except SandboxError as err:
            return replace(out, error=Failure("SandboxError", self._sandbox_failure(err), err))
        finally:
            for path in c_files:  # a %%c cell's program lives for one cell
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        try:
            return await self._after(spec, plan, run, replace(out, run=run), notice)
        finally:
            if run.upper is not None:   # the last reference to the cell's tmpfs
                os.close(run.upper)
                run.upper = None

    async def _after(self, spec: cell.CellSpec, plan: Plan, run: CellRun, out: Outcome,
                     notice: Callable[[str], None]) -> Outcome:
        """What follows a cell's run: notes, %keep, the views, %export."""
        kept = None if spec.host else await self._keep(spec, plan, run)
        for note in run.notes:   # how this host's containers differ: said once a kernel
            if note not in self._said:
                self._said.add(note)
                notice(note)
        if run.disk_full and "disk" in plan.limits:
            notice(_disk_full(plan.limits["disk"], "raise it with %limit disk=SIZE"))
        if run.error:
            return replace(out, error=Failure("ContainerError", run.error))
        stack = None
        if plan.layers is not None and any(s.kind == "layers" for s in spec.show):
            stack = layer_stack(self.store, spec.image, list(plan.layers.lowers), spec)
        if run.snapshots:   # the views' modules are loaded by the first cell that has one
            from . import compare

            out.comparisons = compare.compare(run.snapshots[:len(spec.show)],
                                              image=spec.image, stack=stack, plan=plan,
                                              labels=self.labels)
            out.payloads = [c.payload for c in out.comparisons]
            if spec.label:   # after its own views: its `vs NAME` meant the earlier NAME
                labels.remember(self.labels, labels.keep(spec.label, plan, run.snapshots))
        failure = _failure(spec, run)
        if run.limit and failure is None:
            notice(run.limit)  # a limit was hit, yet the script went on and succeeded
        if kept is not None and failure is not None:
            notice(kept.message)   # the script's own failure is the cell's
        failure = failure or kept
        if spec.export:
            try:
                await self._export(spec, plan, run, failure is None, notice)
            except upper.TooLarge as err:
                failure = failure or Failure("LimitExceeded", _disk_full(
                    err.bound, f"its changes would take {_over(err)} on the host, so "
                    f"%export {spec.export} saved nothing"))
            except (ImageError, OSError) as err:   # OSError: the layer changed under it
                failure = failure or Failure("ImageError", f"%export {spec.export}: {err}")
        return replace(out, error=failure)

    # -- the helper --------------------------------------------------------------------------
    def _restart_helper(self) -> tuple[str, str]:
        """A new sandbox helper for one that went away (killed by anything): returns how
        the old one ended, and what went with it (the %keep chain lives in its dir)."""
        how = self.sandbox.restart()
        had_keep, self.keep_image, self.kept_size = self.keep_image is not None, None, 0
        return how, (" (the changes kept by %keep went with the old one)" if had_keep else "")

    def _sandbox_failure(self, err: SandboxError) -> str:
        """What to tell the user when the sandbox could not run the cell."""
        if self.sandbox.gone():
            try:
                how, lost = self._restart_helper()
            except SandboxError as again:
                return (f"{err}, and a new one could not be started ({again}); restart "
                        "the kernel")
            return (f"the sandbox helper went away ({how}) while this cell ran, so the cell "
                    f"did not run to its end; a new helper is ready: run the cell again{lost}")
        if err.errno in (errno.EAGAIN, errno.ENOMEM):
            return (f"the host could not start the cell's container ({err}): it is out of "
                    "processes or memory for now (an earlier cell's processes, or another "
                    "program's, may hold them). Wait for them to end or stop them, then run "
                    "the cell again; %limit pids=N memory=SIZE keeps a cell within bounds")
        return f"the sandbox could not run the cell: {err}"

    def _check_export(self, spec: cell.CellSpec) -> None:
        """%export NAME of an existing image needs --replace: said before the cell runs."""
        if spec.export and not spec.export_replace and self.store.exists(spec.export):
            raise cell.HeaderError(
                spec.export_lineno, f"%export {spec.export}",
                f"image {spec.export} exists already: write `%export {spec.export} "
                "--replace` to replace it, or choose another name (`rootfs-kernel image "
                "list` shows the names taken)")

    # -- planning ---------------------------------------------------------------------------
    def _parse(self, code: str) -> cell.CellSpec:
        key = (code, tuple(self.user_env.items()))
        spec = self._specs.get(key)
        if spec is None:
            spec = _remember(self._specs, key, cell.parse(code, host_access=self.host_access,
                                                           env=self.user_env))
        return spec

    async def _plan(self, spec: cell.CellSpec, notice: Callable[[str], None],
                    c_program: str | None) -> Plan:
        env = {**self.user_env, **dict(spec.env)}
        if any(key == "output" for key, _ in spec.limits):   # the kernel's, not the sandbox's
            spec = replace(spec, limits=tuple(kv for kv in spec.limits if kv[0] != "output"))
        if spec.host:
            return plan_for(spec, None, self.sandbox.context(env=env, host_env=_host_env()))
        for m in spec.mounts:
            if isinstance(m, cell.Bind) and not os.path.exists(m.source):
                raise cell.HeaderError(m.lineno, f"%bind {m.source} {m.target}",
                                       f"the bind source {m.source} does not exist on the host")
        image = await self._image(spec, notice)
        keep_active = self.keep_image is not None
        if spec.export and keep_active and not spec.keep and self.keep_image == spec.image:
            raise cell.HeaderError(spec.export_lineno, f"%export {spec.export}",
                                   "this cell sees changes kept by earlier cells; add %keep "
                                   "to it so that %export saves them too")
        if keep_active and self.keep_image != spec.image:
            notice(f"the kept changes belong to image {self.keep_image}; this cell starts "
                   f"from {spec.image} and drops them")
            self.drop_keep()
            keep_active = False
        # A plan is a pure function of these, unless the cell reads or writes kept layers
        # or compiles C (its program is a new file each time).
        stamp = self._images.get(spec.image, (None,))[0]   # the image as _image found it
        key = None if keep_active or spec.keep or spec.export or c_program or stamp is None \
            else (spec, stamp, tuple(env.items()), self.sandbox.places, os.getcwd())
        plan = None if key is None else self._plans.get(key)
        if plan is None:
            plan = plan_for(spec, image, self.sandbox.context(
                env=env, keep_active=keep_active, default_limits=self.default_limits,
                host_access=self.host_access), c_program=c_program)
            if key is not None:
                _remember(self._plans, key, plan)
        return plan

    async def _image(self, spec: cell.CellSpec, notice: Callable[[str], None]):
        # Most cells use the image the previous one used: skip the worker thread and the
        # metadata read while its image.json is unchanged (replaced by a rebuild or rm).
        path = self.store.images_dir / spec.image / "image.json"
        stamp = _stamp(path)
        cached = self._images.get(spec.image)
        if cached is not None and stamp is not None and cached[0] == stamp:
            return cached[1]
        image = await self._load_image(spec, notice)
        stamp = stamp or _stamp(path)   # read before the load, unless the load built it
        if stamp is not None:
            self._images[spec.image] = (stamp, image)
        return image

    async def _load_image(self, spec: cell.CellSpec, notice: Callable[[str], None]):
        progress = self._progress or (lambda _f, _m: None)
        fresh = not self.store.exists(spec.image)
        if fresh and not spec.build and spec.image not in (known := self.store.available()):
            # Said before anything is prepared, in the cell's own words.
            err = ImageError(
                f"unknown image {spec.image!r}: `%image {spec.image} --build` makes it "
                f"(from minimal; `--build busybox` or `--build debian` from those), or a "
                f"cell with `%export {spec.image}` saves its root filesystem as it; images "
                f"here: {', '.join(known) or 'none'} (`rootfs-kernel image list`)")
            if spec.image_lineno:
                raise cell.HeaderError(spec.image_lineno, f"%image {spec.image}", str(err))
            raise err
        if fresh:
            # Information, not a failure: on the progress line, in order with the build's.
            progress(0.0, f"preparing image {spec.image} ...")
        try:
            # Building an image takes seconds to minutes: keep answering messages meanwhile.
            started = time.monotonic()
            if spec.build and fresh:
                from .images.commands import image_build

                image = await asyncio.to_thread(image_build, spec.build, spec.image,
                                                progress=progress, store=self.store)
            else:
                image = await asyncio.to_thread(self.store.get, spec.image, progress)
            if fresh:
                progress(1.0, _ready_line(image, time.monotonic() - started))
            return image
        except ImageError as err:
            if spec.image_lineno:
                raise cell.HeaderError(spec.image_lineno, f"%image {spec.image}",
                                       str(err)) from None
            raise

    def _c_program(self) -> str:
        """Where this %%c cell's program goes (its source is never on the host: the
        compile writes it in its own work directory, plan.compile_plan). Its directory is
        0711 in root mode (a cell's unprivileged root runs the program of a `%root none`
        cell by path), so what it holds is no one else's to read."""
        self._c_count += 1
        workdir = os.path.join(self.sandbox.places.dir, "c")
        with contextlib.suppress(FileExistsError):
            os.mkdir(workdir, 0o700)
        fd = os.open(workdir, dirfd.DIR_FLAGS)
        try:
            os.fchmod(fd, 0o711 if os.geteuid() == 0 else 0o700)
        finally:
            os.close(fd)
        return os.path.join(workdir, f"cell{self._c_count}")

    async def _compile_c(self, spec: cell.CellSpec, binary: str, stderr: Sink,
                         interrupt: asyncio.Event | None) -> list[str]:
        """%%c: compile with the host's gcc in a container of its own (plan.compile_plan:
        read-only host tree, only its work directory writable, unprivileged, what it writes
        within the cell's disk=, the source handed down its script pipe); the program is
        copied out of it, the cell's plan runs it."""
        flags = shlex.split(spec.c_flags or "")   # cell.py made sure it splits
        # Named relative to the compile's working directory: the helper's directory names
        # the kernel's user, and gcc's command lines (its own, cc1's, ld's) are anyone's
        # to read.
        name = os.path.basename(binary)
        cmd = ["gcc", "-O1", "-static", "-o", name, f"{name}.c", *flags]
        messages: list[bytes] = []
        # The compile writes within the cell's disk= (its tmpfs).
        limits = bounds(tuple(kv for kv in spec.limits if kv[0] == "disk"), self.default_limits)
        plan = compile_plan(self.sandbox.context(), f"{binary}.c", spec.script, cmd, limits,
                            _compiler_paths())
        run = await self.sandbox.run(plan, messages.append, messages.append,
                                     interrupt=interrupt, upper=True)
        try:
            if run.error:
                raise _CompileError(f"the compiler's container could not be made: {run.error}")
            text = b"".join(messages).decode(errors="replace").replace(f"{name}.c", "cell.c")
            if run.status:
                hint = "" if run.status != EXIT_CANNOT_RUN else " (is gcc installed on the host?)"
                if "disk" in limits and (run.disk_full or "No space left" in text):
                    text += "\n" + _disk_full(limits["disk"], "what gcc writes is bounded by "
                                               "it too: raise it with %limit disk=SIZE")
                raise _CompileError(f"gcc exited with status {run.status}{hint}:\n{text}")
            if text:
                stderr(text.encode())
            if run.upper is None:
                raise _CompileError("the compiler's work directory could not be read")
            try:   # the program gcc made, no link: run by anyone's id, read by no one else
                await asyncio.to_thread(upper.copy_file, run.upper, name, binary, 0o711)
            except FileNotFoundError:
                raise _CompileError("gcc made no program: a flag (-c, -E, -S, -M...) stopped "
                                    "it before linking; drop it") from None
        finally:
            if run.upper is not None:
                os.close(run.upper)
        return [binary]

    async def _export(self, spec: cell.CellSpec, plan: Plan, run: CellRun, succeeded: bool,
                      notice: Callable[[str], None]) -> None:
        """%export: the cell's changes on top of its image become a new image: the kept
        layer they were merged onto (%keep), else the upper on the cell's tmpfs, whose
        copy is bounded by the cell's disk= like the cell's own writes."""
        from .images.oci_export import commit_layer

        if not succeeded:
            notice(f"the cell failed, so %export {spec.export} saved nothing")
            return
        source = self.sandbox.places.kept if spec.keep else run.upper
        if source is None:
            raise ImageError("the cell's changes could not be read, so nothing was saved")
        # The cell wrote as its own ids (an unprivileged range in root mode): the image
        # stores the image's ids.
        image = await asyncio.to_thread(commit_layer, self.store, spec.image, source,
                                        spec.export, replace=spec.export_replace,
                                        ids=self.sandbox.context().ids,
                                        progress=self._progress or (lambda _f, _m: None),
                                        bound=None if spec.keep else plan.limits.get("disk"))
        notice(f"exported image {image.name}: {spec.image} plus this cell's changes "
               f"({len(image.layers)} layers); use it with %image {image.name}")

    # -- %keep --------------------------------------------------------------------------------
    async def _keep(self, spec: cell.CellSpec, plan: Plan, run: CellRun) -> Failure | None:
        """%keep: the cell's changes merged onto the kept layer, the chain's total within
        the cell's disk=; a cell without %keep ends the chain."""
        if not spec.keep:
            if self.keep_image is not None:
                self.drop_keep()
            return None
        if run.upper is None:   # no container, or its layers could not be opened
            return None if run.error else Failure(
                "ImageError", "%keep: the cell's changes could not be read, so none were kept")
        bound = plan.limits.get("disk")
        chained = self.keep_image is not None
        try:
            self.kept_size = await asyncio.to_thread(
                upper.merge, run.upper, self.sandbox.places.kept,
                self.kept_size if chained else 0, bound)
        except upper.TooLarge as err:
            return Failure("LimitExceeded", _disk_full(bound, (
                f"with this cell's changes, what %keep keeps would take {_over(err)}, so "
                "they were not kept"
                f"{' (what earlier cells kept still is)' if chained else ''}: raise it "
                "with %limit disk=SIZE, or delete kept files in a %keep cell")))
        except upper.NotKept as err:
            return Failure("ImageError", f"%keep: {err}; this cell's changes were not kept"
                           f"{' (what earlier cells kept still is)' if chained else ''}")
        except (ImageError, OSError) as err:
            self.drop_keep()
            return Failure("ImageError", f"%keep could not keep this cell's changes ({err}); "
                           f"the changes earlier cells kept went too: the next cell starts "
                           f"from image {spec.image}")
        self.keep_image = spec.image
        return None

    def drop_keep(self) -> None:
        self.keep_image = None
        self.kept_size = 0
        self.sandbox.drop("keep")


def _over(err: upper.TooLarge) -> str:
    """"20.0 MiB, 4.5 KiB more than it": sizes near the bound, told apart."""
    return (f"{cell.format_size(err.size, decimals=1)}, "
            f"{cell.format_size(err.size - err.bound, decimals=1)} more than it")


def _disk_full(bound: float, then: str) -> str:
    """What a cell hears when what it writes, keeps or exports passes its disk=."""
    return f"the cell's writable layer is full (%limit disk={cell.format_size(bound)}): {then}"


def _stamp(path: os.PathLike) -> tuple[int, int] | None:
    """An image's metadata file as the store last wrote it: a new image (a build, an
    import, an export with --replace) is a new file (store.py renames it into place)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _remember(cache: dict, key: tuple, value: object) -> object:
    """Put value in a small cache, dropping the oldest entry when it is full."""
    if len(cache) >= CACHED_CELLS:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


def layer_stack(store: ImageStore, image: str, lowers: list[str], spec: cell.CellSpec
                ) -> list[dict]:
    """What %show layers labels the overlay's layers with, bottom first: the image's
    (digest, size, created by), the %keep layer of earlier cells, then this cell's upper.
    `lowers`: the overlay's lowerdir, top first."""
    from .images import commands

    n = len(lowers)
    stack = commands.layer_stack(image, store, lowers=n)
    if n == len(stack) + 1:   # an earlier %keep cell's upper, on top of the image
        stack.append({"label": "kept", "digest": None, "size": None,
                      "created_by": "earlier %keep cells' changes", "role": f"lowerdir 1/{n}"})
    how = "this cell's writes" + (" (%keep: kept for the next cell)" if spec.keep else
                                  f" (%export {spec.export})" if spec.export else "")
    stack.append({"label": "cell", "digest": None, "size": None, "created_by": how,
                  "role": "upperdir"})
    return stack


def _host_env() -> dict[str, str]:
    """The environment of a %%host cell: the kernel's, with the kernel's own environment's
    programs (rootfs-kernel, jupyter: a venv's bin/) first on PATH, as an activated venv
    has them, whatever PATH the front-end started the kernel with."""
    env = dict(os.environ)
    own = os.path.dirname(sys.executable)
    path = env.get("PATH", "")
    if own and path.split(os.pathsep)[0] != own:
        env["PATH"] = own + (os.pathsep + path if path else "")
    return env


def _ready_line(image, seconds: float) -> str:
    """The progress display's last line: "image busybox ready: 2.0 MiB, 1 layer, 1.1 s"."""
    size = sum(layer.get("size", 0) for layer in image.meta.get("layers", []))
    n = len(image.layers)
    return (f"image {image.name} ready: {cell.format_size(size, decimals=1)}, "
            f"{n} layer{'' if n == 1 else 's'}, {seconds:.1f} s")


def _compiler_paths() -> list[tuple[str, str, str | None]]:
    """plan.COMPILER_PATHS as this host has them: directories, files or symlinks."""
    out: list[tuple[str, str, str | None]] = []
    for path in COMPILER_PATHS:
        if os.path.islink(path):
            out.append((path, "link", os.readlink(path)))
        elif os.path.isdir(path):
            out.append((path, "dir", None))
        elif os.path.isfile(path):
            out.append((path, "file", None))
    return out


class _CompileError(Exception):
    pass


def _failure(spec: cell.CellSpec, run: CellRun) -> Failure | None:
    if run.limit and (run.status or run.signal):
        return Failure("LimitExceeded", f"{run.limit} (exit status {run.status})")
    if run.timed_out:
        return Failure("Timeout", f"the cell ran longer than %timeout {spec.timeout:g} s and "
                       "its container was killed")
    if run.interrupted:
        how = (f"killed by {signal.Signals(run.signal).name} after ignoring SIGINT for "
               f"{GRACE_SECONDS:g} s" if run.signal == signal.SIGKILL else
               f"its script exited with status {run.status}")
        return Failure("Interrupted", f"the stop button sent SIGINT to the cell's processes; "
                       f"{how}")
    if run.status:
        how = f" (killed by {signal.Signals(run.signal).name})" if run.signal else ""
        return Failure("ExitStatus", f"the script exited with status {run.status}{how}")
    return None
