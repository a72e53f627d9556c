"""What every numpy task shares: the optimizer from the config, the learning rate, the thread rule.

A *task* (:class:`doodlelab.tasks.protocol.Task`) is what the fit loop drives: it owns the
model, loss and optimizer of one kind and backend. :class:`doodlelab.twin.base.TorchTask`
is the same base on the torch side.
"""

from __future__ import annotations

import numpy as np

from doodlelab.config import Config
from doodlelab.kinds import NUMPY, Backend
from doodlelab.nn import SGD, Module
from doodlelab.tasks.threads import matmul_threads

MOMENTUM = "momentum."  # prefix of the optimizer's buffers in a training state


class NumpyTask:
    """Base of the numpy tasks. Subclasses build ``model`` and call :meth:`_setup_optimizer`.

    ``widths`` are the image MLP's layer sizes, which the thread rule reads.
    """

    backend: Backend = NUMPY
    cfg: Config
    model: Module
    optimizer: SGD
    widths: tuple[int, ...]

    def _setup_optimizer(self) -> None:
        """Make ``optimizer``: SGD over every parameter of ``model`` with ``cfg.optim``'s settings."""
        self.optimizer = SGD(self.model.parameters(), **self.cfg.optim.sgd_kwargs())

    def set_lr(self, lr: float) -> None:
        """Set the learning rate used by the next steps."""
        self.optimizer.lr = lr

    def threads(self, rows: int) -> int:
        """Return the BLAS thread count for passes of ``rows`` images (see :func:`matmul_threads`)."""
        return matmul_threads(rows, self.widths)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return copies of the weights in numpy layout (Linear weight is (in, out))."""
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Load weights in numpy layout."""
        self.model.load_state_dict(state)

    def grads(self) -> dict[str, np.ndarray]:
        """Return the gradients of the last step, by parameter name, in numpy layout."""
        return {name: g.copy() for name, _, g in self.model.named_parameters()}

    def training_state(self) -> dict[str, np.ndarray]:
        """Return copies of the weights and of the optimizer's momentum buffers (``momentum.<name>``)."""
        state = self.state_dict()
        for (name, _, _), v in zip(self.model.named_parameters(), self.optimizer.velocity):
            state[f"{MOMENTUM}{name}"] = v.copy()
        return state

    def load_training_state(self, state: dict[str, np.ndarray]) -> None:
        """Load what :meth:`training_state` returned: weights and momentum buffers, in place."""
        self.load_state_dict({k: v for k, v in state.items() if not k.startswith(MOMENTUM)})
        for (name, _, _), v in zip(self.model.named_parameters(), self.optimizer.velocity):
            v[...] = state[f"{MOMENTUM}{name}"]
