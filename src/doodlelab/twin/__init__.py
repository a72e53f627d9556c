"""The PyTorch twin of the numpy core: the only package of doodlelab that imports torch.

It mirrors :mod:`doodlelab.nn` name for name (``Linear``, ``ReLU``, ``LeakyReLU``,
``Tanh``, ``Sigmoid``, ``Dropout``, ``L2Normalize``, ``Sequential``, ``build_mlp``, ``l2_penalty``)
so that a reader can put the two side by side. A twin is always *made from* a numpy
model (:func:`from_numpy`): same structure, same parameter names, the same initial
weights (``Linear`` weights transposed from ``(in, out)`` to torch's ``(out, in)``),
and dropout masks drawn from the same numpy Generator stream.
"""

from doodlelab.twin.losses import SoftmaxCrossEntropy, l2_penalty
from doodlelab.twin.modules import (
    ACTIVATIONS,
    Dropout,
    L2Normalize,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    build_mlp,
    from_numpy,
    load_numpy_state,
    numpy_grads,
    numpy_state,
)

__all__ = [
    "ACTIVATIONS",
    "Dropout",
    "L2Normalize",
    "LeakyReLU",
    "Linear",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "Tanh",
    "build_mlp",
    "from_numpy",
    "l2_penalty",
    "load_numpy_state",
    "numpy_grads",
    "numpy_state",
]
