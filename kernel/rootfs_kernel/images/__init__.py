"""Rootfs images: a store of named images made of shared, read-only layer directories."""

from ..cell import DEFAULT_IMAGE
from . import builders  # noqa: F401  (registers the images a store builds on first use)
from .errors import ImageError
from .store import Image, ImageStore, default_root

__all__ = ["DEFAULT_IMAGE", "Image", "ImageError", "ImageStore", "default_root"]
