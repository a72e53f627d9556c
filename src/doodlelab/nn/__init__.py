"""The numpy core: modules, losses, initialisation, optimizers, gradient checks.

Nothing in this package imports torch (a test checks ``sys.modules``).
"""

from doodlelab.nn.losses import SoftmaxCrossEntropy, l2_penalty, log_softmax, softmax
from doodlelab.nn.modules import (
    ACTIVATIONS,
    Dropout,
    L2Normalize,
    LeakyReLU,
    Linear,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
)
from doodlelab.nn.optim import SGD, LRSchedule

__all__ = [
    "ACTIVATIONS",
    "Dropout",
    "L2Normalize",
    "LRSchedule",
    "LeakyReLU",
    "Linear",
    "Module",
    "ReLU",
    "SGD",
    "Sequential",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "Tanh",
    "l2_penalty",
    "log_softmax",
    "softmax",
]
