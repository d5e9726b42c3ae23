"""The one exception type the image code raises at its users."""


class ImageError(Exception):
    """A user-facing failure: the message says what went wrong and what to do."""
