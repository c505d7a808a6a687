"""Primitive ops, grouped by family. Importing this package registers every op."""

from . import creation, elementwise, reduce, shape, index, random, convert  # noqa: F401
from . import linalg, conv, nn, recurrent  # noqa: F401
