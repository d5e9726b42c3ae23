"""The image store: named images made of content-addressed layer directories.

Layout under the store root ($XDG_DATA_HOME/rootfs-kernel by default)::

    images/<name>/image.json          metadata of one image
    layers/sha256-<hex>/rootfs/       one layer, shared by every image that uses it
    layers/sha256-<hex>/layer.json    its digest, size and deletions mknod refused
    locks/<name>.lock                 flock()ed while <name> is being built
    locks/store.lock                  shared by builds, exclusive while removing layers
    tmp/<name>.<random>/              work in progress; holds .owner.lock while alive

A build writes everything under tmp/, then renames layers and finally the image
directory into place, so a failed, interrupted or killed build never leaves a
partial image under its name; its temp directory is removed when its owner is
gone (its flock is released by the kernel), on the next use of the store.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import settings
from ..cell import BUILD_KINDS, DEFAULT_PATH, IMAGE_NAME, format_size
from ..rmtree import remove_tree
from .errors import ImageError
from .layerfs import LayerSummary, write_canonical_tar

SCHEMA = 1
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# The store's own bound: its layers' sizes as tar archives (what `rootfs-kernel image
# export` writes for them), each shared layer counted once. A build, import or %export
# that would pass it fails and stores nothing. A kernel-wide setting (settings.py).
SIZE = settings.BY_NAME["store_size"]

# progress(fraction or None when unknown, message)
Progress = Callable[[float | None, str], None]

# name -> the builder `get` uses when that image is not built yet (None: not on this
# host). Registered by builders.py.
_AUTO_BUILDERS: dict[str, Callable[[], Builder | None]] = {}


def register_auto_builder(name: str, find: Callable[[], Builder | None]) -> None:
    """Let ``ImageStore.get(name)`` build ``name`` on first use, with ``find()``."""
    _AUTO_BUILDERS[name] = find


def _auto_builders() -> dict[str, Builder]:
    found = {name: find() for name, find in _AUTO_BUILDERS.items()}
    return {name: b for name, b in found.items() if b is not None}


def no_progress(fraction: float | None, message: str) -> None:
    """The default progress callback: say nothing."""


def default_root() -> Path:
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(data) / "rootfs-kernel"


def size_bound(text: str | None = None) -> int | None:
    """The store's bound from `text`, else the store_size setting's environment variable,
    else its default; None for `none` (no bound)."""
    text = (text if text is not None else os.environ.get(SIZE.env, "")).strip() \
        or SIZE.default
    try:
        return settings.store_bound(text)
    except ValueError as err:
        raise ImageError(f"the image store's size bound ({SIZE.env} or the kernel's "
                         f"{SIZE.name}): {err}; or `none` for no bound") from None


def check_name(name: str) -> str:
    if not IMAGE_NAME.match(name):
        raise ImageError(
            f"invalid image name {name!r}: use lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 64 characters"
        )
    return name


def check_digest(digest: str) -> str:
    if not _DIGEST_RE.match(digest):
        raise ImageError(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return digest


@dataclass(frozen=True)
class Image:
    """A stored image, ready to be stacked as overlay lower layers."""

    name: str
    layers: list[Path]  # bottom -> top; overlay's lowerdir lists them top first
    env: list[str]  # "K=V"
    workdir: str | None
    meta: dict[str, Any] = field(repr=False)

    @property
    def config(self) -> dict[str, Any]:
        return self.meta.get("config") or {}


@dataclass
class LayerRef:
    """A layer committed to the store, as recorded in image.json."""

    digest: str
    size: int
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the original diff_id

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "size": self.size, **self.extra}


@dataclass
class BuildOutput:
    """What a builder hands back: its layers (bottom first), config and provenance."""

    layers: list[LayerRef]
    config: dict[str, Any]
    source: str
    extra: dict[str, Any] = field(default_factory=dict)


class BuildContext:
    """What a builder may do: make layer directories in its temp dir and commit them."""

    def __init__(self, store: ImageStore, name: str, workdir: Path, progress: Progress):
        self.store = store
        self.name = name
        self.workdir = workdir
        self.progress = progress
        self._count = 0
        # Layers move into the store only with the image, so a failed build adds none.
        self.staged: list[tuple[Path, str]] = []
        # The store's bound: what it may still take, what this build's new layers take,
        # and what the layer being written has taken so far (charge).
        self.room = None if store.bound is None else store.bound - store.usage()
        self.added = 0
        self.pending = 0

    def charge(self, nbytes: int) -> None:
        """Count bytes the layer being written takes (its tar's size); ImageError before
        the store would pass its bound."""
        self.pending += nbytes
        if self.room is not None and self.added + self.pending > self.room:
            raise self.store.full(self.name, self.added + self.pending)

    def new_layer_dir(self) -> Path:
        """An empty directory to fill with one layer's rootfs."""
        self._count += 1
        rootfs = self.workdir / f"layer-{self._count}" / "rootfs"
        rootfs.mkdir(parents=True)
        os.chmod(rootfs, 0o755)
        return rootfs

    def scratch_dir(self, label: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{label}.", dir=self.workdir))
        return path

    def add_layer(
        self,
        rootfs: Path,
        extra_whiteouts: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> LayerRef:
        """Digest ``rootfs`` and move it into the store (or drop it if already stored)."""
        summary = write_canonical_tar(rootfs, extra_whiteouts=extra_whiteouts)
        self.pending = 0
        if not (self.store.layer_dir(summary.digest) / "rootfs").is_dir():
            self.charge(summary.tar_size)
            self.added, self.pending = self.added + self.pending, 0
        ref, staging = self.store._stage_layer(rootfs, summary, extra_whiteouts or [],
                                               extra or {})
        self.staged.append((staging, ref.digest))
        return ref


Builder = Callable[[BuildContext], BuildOutput]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_durably(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


class ImageStore:
    """Named images under one root directory; safe to use from several processes."""

    def __init__(self, root: Path | str | None = None, size: str | None = None) -> None:
        """`size`: the store's bound (`20g`, `none`), else the store_size setting's
        environment variable, else its default; read when first needed (an ImageError
        says what is wrong with it)."""
        self.root = Path(root) if root is not None else default_root()
        self.images_dir = self.root / "images"
        self.layers_dir = self.root / "layers"
        self.locks_dir = self.root / "locks"
        self.tmp_dir = self.root / "tmp"
        self._cleaned = False
        self._size = size

    @property
    def bound(self) -> int | None:
        return size_bound(self._size)

    def usage(self) -> int:
        """What the stored layers take, as the bound counts them (their tar's sizes)."""
        total = 0
        if self.layers_dir.is_dir():
            for layer_dir in self.layers_dir.iterdir():
                meta = self.layer_meta(layer_dir)
                total += int(meta.get("tar_size") or meta.get("size") or 0)
        return total

    def full(self, name: str, adding: int) -> ImageError:
        """The message of a build that would pass the store's bound."""
        used, bound = self.usage(), self.bound or 0
        return ImageError(
            f"the image store is full: image {name} needs {format_size(adding)} more and the "
            f"store holds {format_size(used)} of its {format_size(bound)} ({SIZE.env}); "
            "nothing was stored. Remove images you no longer need (`rootfs-kernel image "
            "list` shows their sizes, `rootfs-kernel image rm NAME` removes one) or raise "
            f"the bound: {SIZE.env}=SIZE, or the kernel's --RootfsKernel.{SIZE.name}=SIZE")

    # ----- reading -------------------------------------------------------------

    def names(self) -> list[str]:
        """Names of the images that are built, sorted."""
        if not self.images_dir.is_dir():
            return []
        return sorted(
            p.name for p in self.images_dir.iterdir() if (p / "image.json").is_file()
        )

    def exists(self, name: str) -> bool:
        return (self.images_dir / check_name(name) / "image.json").is_file()

    def available(self) -> list[str]:
        """Built images plus built-in ones that ``get`` can build on first use."""
        return sorted(set(self.names()) | set(_auto_builders()))

    def layer_dir(self, digest: str) -> Path:
        return self.layers_dir / check_digest(digest).replace(":", "-")

    def load(self, name: str) -> Image:
        """The stored image ``name``; never builds."""
        check_name(name)
        path = self.images_dir / name / "image.json"
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise self._unknown(name) from None
        except (OSError, ValueError) as e:
            raise ImageError(
                f"image {name!r} has unreadable metadata ({e}); remove it with "
                f"`rootfs-kernel image rm {name}` and build or import it again"
            ) from e
        layers = []
        for layer in meta.get("layers", []):
            rootfs = self.layer_dir(layer["digest"]) / "rootfs"
            if not rootfs.is_dir():
                raise ImageError(
                    f"image {name!r} is damaged: its layer {layer['digest']} is missing from "
                    f"{self.layers_dir}; remove it with `rootfs-kernel image rm {name}` and "
                    "build or import it again"
                )
            layers.append(rootfs)
        config = meta.get("config") or {}
        env = list(config.get("Env") or [])
        if not any(e.startswith("PATH=") for e in env):
            env.insert(0, f"PATH={DEFAULT_PATH}")  # what docker does for images without one
        return Image(
            name=name,
            layers=layers,
            env=env,
            workdir=config.get("WorkingDir") or None,
            meta=meta,
        )

    def get(self, name: str, progress: Progress = no_progress) -> Image:
        """The image ``name``, building a built-in one (e.g. ``minimal``) on first use."""
        check_name(name)
        if self.exists(name):
            return self.load(name)
        builder = _auto_builders().get(name)
        if builder is None:
            raise self._unknown(name)
        return self.build(name, builder, progress=progress, if_missing=True)

    def _unknown(self, name: str) -> ImageError:
        available = ", ".join(self.available()) or "none"
        return ImageError(
            f"unknown image {name!r}: available: {available}; build one with "
            f"`rootfs-kernel image build {'|'.join(BUILD_KINDS)} NAME` or import one with "
            "`rootfs-kernel image import FILE NAME`"
        )

    # ----- building ------------------------------------------------------------

    def build(
        self,
        name: str,
        builder: Builder,
        *,
        progress: Progress = no_progress,
        replace: bool = False,
        wait: bool = True,
        timeout: float | None = None,
        if_missing: bool = False,
    ) -> Image:
        """Run ``builder`` and store its output as ``name``, atomically.

        A second build of the same name waits for the first (or, with ``wait=False``,
        refuses). With ``if_missing`` an image built meanwhile by someone else is
        returned as is; otherwise an existing image is an error unless ``replace``.
        """
        check_name(name)
        self._setup()
        with self._name_lock(name, wait, timeout, progress):
            if self.exists(name):
                if if_missing:
                    return self.load(name)
                if not replace:
                    raise ImageError(
                        f"image {name!r} already exists; remove it first with "
                        f"`rootfs-kernel image rm {name}` or build with --replace"
                    )
            with self._store_lock(shared=True), self._workdir(name) as workdir:
                ctx = BuildContext(self, name, workdir, progress)
                out = builder(ctx)
                progress(0.99, f"saving image {name}")
                self._check_room(name, ctx.staged)
                self._commit_layers(ctx.staged)
                self._commit_image(name, out, workdir)
        progress(1.0, f"image {name} ready")
        return self.load(name)

    def _stage_layer(
        self, rootfs: Path, summary: LayerSummary, whiteouts: list[str], extra: dict[str, Any]
    ) -> tuple[LayerRef, Path]:
        staging = rootfs.parent
        meta: dict[str, Any] = {
            "digest": summary.digest, "size": summary.size, "tar_size": summary.tar_size}
        if whiteouts:
            meta["whiteouts"] = sorted(whiteouts)
        if extra.get("diff_id") and extra["diff_id"] != summary.digest:
            meta["diff_ids"] = [extra["diff_id"]]
        _write_json_durably(staging / "layer.json", meta)
        return LayerRef(summary.digest, summary.size, dict(extra)), staging

    def _check_room(self, name: str, staged: list[tuple[Path, str]]) -> None:
        """The store with this build's new layers stays within its bound, counted again
        now: another build may have stored layers meanwhile."""
        bound = self.bound
        if bound is None:
            return
        adding = sum(int(self.layer_meta(staging).get("tar_size") or 0)
                     for staging, digest in staged
                     if not (self.layer_dir(digest) / "rootfs").is_dir())
        if self.usage() + adding > bound:
            raise self.full(name, adding)

    def _commit_layers(self, staged: list[tuple[Path, str]]) -> None:
        for staging, digest in staged:
            target = self.layer_dir(digest)
            try:
                os.rename(staging, target)
            except OSError as e:
                # Another image already brought the same layer: keep theirs, drop ours.
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                for diff_id in self.layer_meta(staging).get("diff_ids", []):
                    self._add_diff_id(target, diff_id)
                remove_tree(staging)

    def _add_diff_id(self, layer_dir: Path, diff_id: str) -> None:
        meta = self.layer_meta(layer_dir)
        if diff_id not in meta.setdefault("diff_ids", []):
            meta["diff_ids"].append(diff_id)
            tmp = layer_dir / f".layer.json.{os.getpid()}"
            _write_json_durably(tmp, meta)
            os.replace(tmp, layer_dir / "layer.json")

    @staticmethod
    def layer_meta(layer_dir: Path) -> dict[str, Any]:
        try:
            return json.loads((layer_dir / "layer.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def find_layer(self, digest: str) -> LayerRef | None:
        """A stored layer with this content digest, or imported from a tar with this diff_id."""
        if not self.layers_dir.is_dir():
            return None
        direct = self.layers_dir / digest.replace(":", "-")
        candidates = [direct] if direct.is_dir() else []
        candidates += sorted(p for p in self.layers_dir.iterdir() if p != direct)
        for layer_dir in candidates:
            meta = self.layer_meta(layer_dir)
            if layer_dir == direct or digest in meta.get("diff_ids", []):
                if (layer_dir / "rootfs").is_dir() and "digest" in meta:
                    return LayerRef(meta["digest"], meta.get("size", 0))
        return None

    def _commit_image(self, name: str, out: BuildOutput, workdir: Path) -> None:
        for layer in out.layers:
            if not (self.layer_dir(layer.digest) / "rootfs").is_dir():
                raise ImageError(f"internal error: layer {layer.digest} was not stored")
        meta: dict[str, Any] = {
            "schema": SCHEMA,
            "name": name,
            "source": out.source,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "size": sum(layer.size for layer in out.layers),
            "layers": [layer.to_json() for layer in out.layers],
            "config": out.config,
            **out.extra,
        }
        staged = workdir / "image"
        staged.mkdir()
        _write_json_durably(staged / "image.json", meta)
        _fsync_dir(staged)
        self.images_dir.mkdir(parents=True, exist_ok=True)
        final = self.images_dir / name
        if final.exists():
            os.rename(final, workdir / "old-image")
        os.rename(staged, final)
        _fsync_dir(self.images_dir)

    # ----- removing ------------------------------------------------------------

    def remove(self, name: str) -> list[str]:
        """Remove image ``name`` and the layers no other image uses; returns those digests."""
        check_name(name)
        self._setup()
        with self._name_lock(name, wait=False, timeout=None, progress=no_progress):
            final = self.images_dir / name
            if not (final / "image.json").is_file():
                raise self._unknown(name)
            with self._workdir(f"rm-{name}") as workdir:
                os.rename(final, workdir / "image")
        return self.collect_garbage()

    def collect_garbage(self) -> list[str]:
        """Remove layers that no image refers to (skipped while a build is running)."""
        removed: list[str] = []
        # A build holds the lock shared for as long as it runs: skip, it collects after.
        # A moment's hold is not a build: a process another thread of ours is starting
        # shares the lock's open file until its exec closes it, so try again briefly.
        deadline = time.monotonic() + 1.0
        while True:
            try:
                lock = self._store_lock(shared=False, wait=False)
                lock.__enter__()
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return removed
                time.sleep(0.02)
        try:
            used = set()
            for name in self.names():
                with contextlib.suppress(ImageError):
                    meta = self.load(name).meta
                    used.update(layer["digest"] for layer in meta.get("layers", []))
            if self.layers_dir.is_dir():
                for path in sorted(self.layers_dir.iterdir()):
                    digest = path.name.replace("-", ":", 1)
                    if digest not in used:
                        with self._workdir("gc") as workdir:
                            os.rename(path, workdir / "layer")
                        removed.append(digest)
        finally:
            lock.__exit__(None, None, None)
        return removed

    # ----- locks and temp dirs -------------------------------------------------

    def _setup(self) -> None:
        # Kernels started together race to make the store: whoever makes it sets its mode.
        try:
            self.root.mkdir(parents=True)
            os.chmod(self.root, 0o700)  # layers keep the images' modes (1777 /tmp ...)
        except FileExistsError:
            pass
        for d in (self.images_dir, self.layers_dir, self.locks_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        if not self._cleaned:
            self.clean_stale()
            self._cleaned = True

    def clean_stale(self) -> list[Path]:
        """Remove temp dirs whose builder is gone (its lock is free)."""
        removed = []
        if not self.tmp_dir.is_dir():
            return removed
        for path in self.tmp_dir.iterdir():
            lock = path / ".owner.lock"
            try:
                fd = os.open(lock, os.O_RDWR)
            except FileNotFoundError:
                # Killed between mkdtemp and creating the lock: stale once not brand new.
                with contextlib.suppress(FileNotFoundError):
                    if time.time() - path.lstat().st_mtime > 60:
                        remove_tree(path)
                        removed.append(path)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # its builder is still running
            try:
                remove_tree(path)
                removed.append(path)
            finally:
                os.close(fd)
        return removed

    @contextlib.contextmanager
    def _workdir(self, label: str) -> Iterator[Path]:
        path = Path(tempfile.mkdtemp(prefix=f"{label}.", dir=self.tmp_dir))
        fd = os.open(path / ".owner.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield path
        finally:
            try:
                remove_tree(path)
            finally:
                os.close(fd)

    @contextlib.contextmanager
    def _name_lock(
        self, name: str, wait: bool, timeout: float | None, progress: Progress
    ) -> Iterator[None]:
        fd = os.open(self.locks_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            told = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not wait or (deadline is not None and time.monotonic() > deadline):
                        raise ImageError(
                            f"image {name!r} is being built or removed by another process; "
                            "wait for it to finish and try again"
                        ) from None
                    if not told:
                        progress(None, f"waiting for another process building {name}")
                        told = True
                    time.sleep(0.1)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _store_lock(self, shared: bool, wait: bool = True) -> Iterator[None]:
        fd = os.open(self.locks_dir / "store.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
            fcntl.flock(fd, op if wait else op | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        try:
            yield
        finally:
            os.close(fd)
