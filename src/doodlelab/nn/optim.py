"""SGD with momentum and learning-rate schedules.

The update is exactly ``torch.optim.SGD``'s (dampening 0)::

    g = grad + weight_decay * p           # coupled weight decay
    v = momentum * v + g                  # velocity, starts at 0
    p -= lr * (g + momentum * v)          # Nesterov
    p -= lr * v                           # classic

The textbook form ``v = mu * v - lr * g; p += v`` only agrees with this while the
learning rate is constant, so a schedule would make the two drift apart.
"""

from __future__ import annotations

import math

import numpy as np


class SGD:
    """Stochastic gradient descent on ``(param, grad)`` array pairs, updated in place."""

    def __init__(
        self,
        parameters: list[tuple[np.ndarray, np.ndarray]],
        lr: float,
        momentum: float = 0.9,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0.0:
            raise ValueError("nesterov needs momentum > 0")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.parameters = list(parameters)
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.velocity = [np.zeros_like(p) for p, _ in self.parameters]

    def step(self) -> None:
        """Apply one update to every parameter, using the gradients as they are now."""
        lr, mu, wd = self.lr, self.momentum, self.weight_decay
        for (p, g), v in zip(self.parameters, self.velocity):
            d = g + p.dtype.type(wd) * p if wd else g
            if mu:
                v *= p.dtype.type(mu)
                v += d
                d = d + p.dtype.type(mu) * v if self.nesterov else v
            p -= p.dtype.type(lr) * d

    def zero_grad(self) -> None:
        """Zero the gradients of the parameters this optimizer holds."""
        for _, g in self.parameters:
            g.fill(0)

    def state_dict(self) -> dict[str, object]:
        """Return hyperparameters and copies of the velocity buffers."""
        return {"lr": self.lr, "velocity": [v.copy() for v in self.velocity]}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.lr = float(state["lr"])  # type: ignore[arg-type]
        for v, saved in zip(self.velocity, state["velocity"]):  # type: ignore[call-overload]
            v[...] = saved


class LRSchedule:
    """Learning rate as a function of (possibly fractional) epoch.

    - ``constant``: ``base``
    - ``step``: ``base * gamma ** floor(epoch / step_size)`` (torch ``StepLR``)
    - ``cosine``: ``min_lr + (base - min_lr) * (1 + cos(pi * epoch / total)) / 2``
      (torch ``CosineAnnealingLR`` with ``T_max = total``)

    An optional linear warm-up ramps from ``base / (warmup + 1)`` to ``base`` over the
    first ``warmup`` epochs; the decay then runs over the remaining epochs.
    """

    SHAPES = ("constant", "step", "cosine")  # the shapes of the schedule (config optim.schedule)

    def __init__(
        self,
        shape: str,
        base_lr: float,
        total_epochs: int,
        *,
        step_size: int = 10,
        gamma: float = 0.1,
        min_lr: float = 0.0,
        warmup_epochs: int = 0,
    ) -> None:
        if shape not in self.SHAPES:
            raise ValueError(f"unknown schedule {shape!r}; choose one of {', '.join(self.SHAPES)}")
        self.shape, self.base_lr, self.total = shape, base_lr, total_epochs
        self.step_size, self.gamma, self.min_lr = step_size, gamma, min_lr
        self.warmup = warmup_epochs

    def __call__(self, epoch: float) -> float:
        """Return the learning rate to use at ``epoch`` (0-based; fractions allowed)."""
        if epoch < self.warmup:
            return self.base_lr * (epoch + 1) / (self.warmup + 1)
        t = epoch - self.warmup
        if self.shape == "constant":
            return self.base_lr
        if self.shape == "step":
            return self.base_lr * self.gamma ** math.floor(t / self.step_size)
        span = max(self.total - self.warmup, 1)
        return self.min_lr + (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * t / span)) / 2
