"""Utilities for modules and parameters, as ``torch.nn.utils``."""

# Keep one import per line: other workers add theirs below (danlu.nn.utils.rnn).
from . import clip_grad  # noqa: F401
from . import convert_parameters  # noqa: F401
from .clip_grad import clip_grad_norm  # noqa: F401
from .clip_grad import clip_grad_norm_  # noqa: F401
from .clip_grad import clip_grad_value_  # noqa: F401
from .clip_grad import clip_grads_with_norm_  # noqa: F401
from .clip_grad import get_total_norm  # noqa: F401
from .convert_parameters import parameters_to_vector  # noqa: F401
from .convert_parameters import vector_to_parameters  # noqa: F401

# -- danlu.nn.utils.rnn (owned by the RNN worker) ---------------------------------------------------
from . import rnn  # noqa: F401
