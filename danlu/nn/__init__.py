"""Neural-network building blocks, as ``torch.nn``. ``danlu.nn.functional`` holds the functional forms."""

from . import functional  # noqa: F401
from . import init, utils  # noqa: F401
from .modules import *  # noqa: F401,F403
from .parameter import Buffer, Parameter  # noqa: F401
