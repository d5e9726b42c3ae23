"""Rootfs images: a store of named images made of shared, read-only layer directories."""

from .errors import ImageError
from .store import DEFAULT_IMAGE, Image, ImageStore, default_root

__all__ = ["DEFAULT_IMAGE", "Image", "ImageError", "ImageStore", "default_root"]
