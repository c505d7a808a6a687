"""Graph mode: trace, optimize, generate code, differentiate, export."""

from .compile import CompiledFunction, compile  # noqa: F401
from .ir import Graph, GraphError, Node, Value  # noqa: F401
from .compile import mark_dynamic  # noqa: F401,E402
from .control import cond, scan, while_loop  # noqa: F401,E402
