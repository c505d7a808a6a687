"""Neural-network building blocks. ``danlu.nn.functional`` holds the functional forms."""

from . import functional  # noqa: F401
