"""danlu (丹炉): a deep learning framework — eager tensors with tape autograd, and (later) graphs.

>>> import danlu as dl
>>> x = dl.tensor([1.0, 2.0], requires_grad=True)
>>> (x ** 2).sum().backward(); x.grad
tensor([2., 4.])
"""

import warnings as _warnings

# NumPy reports 0/0, log(0), overflow... as RuntimeWarnings; PyTorch returns nan/inf silently, and so do
# danlu's kernels (the filter only matches warnings raised from danlu's own modules and generated code).
_warnings.filterwarnings("ignore", message=r"(divide by zero|invalid value|overflow|underflow) encountered",
                         category=RuntimeWarning, module=r"danlu(\.|$)")

from .core.dtypes import (  # noqa: F401,E402
    DType, bool_ as bool, float16, float32, float64, half, double, int8, int16, int32, int64, uint8, short,
    long, get_default_dtype, set_default_dtype, promote_types, result_type, can_cast, finfo, iinfo,
)
from .core.dtypes import float as float, int as int  # noqa: F401,A001
from .core.device import device  # noqa: F401
from .core.tensor import Tensor, Size  # noqa: F401
from .core.creation import tensor, as_tensor, asarray, from_numpy, from_dlpack  # noqa: F401
from .core.random import Generator, manual_seed, seed, initial_seed, get_rng_state, set_rng_state  # noqa: F401
from .core.formatting import set_printoptions  # noqa: F401
from .core.errors import DanluError, ShapeError, DTypeError, GraphBreakError  # noqa: F401
from .core import dispatch as _dispatch  # noqa: F401

from . import ops as _ops  # noqa: F401  (registers every primitive)
from .ops.creation import *  # noqa: F401,F403
from .ops.elementwise import *  # noqa: F401,F403
from .ops.reduce import *  # noqa: F401,F403
from .ops.shape import *  # noqa: F401,F403
from .ops.index import *  # noqa: F401,F403
from .ops.random import *  # noqa: F401,F403
from .ops.linalg import *  # noqa: F401,F403
from .ops.conv import *  # noqa: F401,F403
from .ops.nn import *  # noqa: F401,F403
from .ops.recurrent import *  # noqa: F401,F403
from . import linalg, nn  # noqa: F401

from . import autograd  # noqa: F401
from .autograd import no_grad, enable_grad, set_grad_enabled, inference_mode, is_grad_enabled  # noqa: F401

from . import graph  # noqa: F401
from .graph import compile, cond, mark_dynamic, scan, while_loop  # noqa: F401,A004
from .graph.session import (  # noqa: F401  TensorFlow 1's Graph / placeholder / Session model
    Graph, Session, Variable, get_default_graph, global_variables, global_variables_initializer, gradients, group,
    placeholder, train_op, trainable_variables, variables_initializer,
)
from . import io  # noqa: F401
from . import export  # noqa: F401
from . import optim  # noqa: F401
from . import train  # noqa: F401
from . import data  # noqa: F401
from .io import load, save  # noqa: F401

__version__ = "0.1.0"


def is_tensor(obj) -> bool:
    """Whether ``obj`` is a danlu Tensor.

    >>> import danlu as dl
    >>> dl.is_tensor(dl.zeros(1)), dl.is_tensor([1])
    (True, False)
    """
    return isinstance(obj, Tensor)


def numel(input) -> int:
    """Number of elements.

    >>> import danlu as dl
    >>> dl.numel(dl.zeros(2, 3))
    6
    """
    return input.numel()


def is_floating_point(input) -> bool:
    return input.is_floating_point()
