"""Module classes."""

from .activation import *  # noqa: F401,F403
from .activation import __all__ as _activation
from .container import Flatten, Identity, ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential, Unflatten
from .conv import *  # noqa: F401,F403
from .conv import __all__ as _conv
from .dropout import *  # noqa: F401,F403
from .dropout import __all__ as _dropout
from .linear import *  # noqa: F401,F403
from .linear import __all__ as _linear
from .loss import *  # noqa: F401,F403
from .loss import __all__ as _loss
from .module import Module, RemovableHandle
from .normalization import *  # noqa: F401,F403
from .normalization import __all__ as _normalization
from .pooling import *  # noqa: F401,F403
from .pooling import __all__ as _pooling
from .rnn import *  # noqa: F401,F403
from .rnn import __all__ as _rnn
from .sparse import *  # noqa: F401,F403
from .sparse import __all__ as _sparse
from .transformer import *  # noqa: F401,F403
from .transformer import __all__ as _transformer

__all__ = ["Module", "RemovableHandle", "Sequential", "ModuleList", "ModuleDict", "ParameterList",
           "ParameterDict", "Identity", "Flatten", "Unflatten", *_activation, *_conv, *_dropout, *_linear, *_loss,
           *_normalization, *_pooling, *_rnn, *_sparse, *_transformer]
