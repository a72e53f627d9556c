"""Layers of the torch twin, made from numpy modules of :mod:`doodlelab.nn.modules`.

``Linear``, ``ReLU``, ``LeakyReLU``, ``Tanh``, ``Sigmoid`` and ``Sequential`` are
torch's own classes: their math is exactly the core's. ``Dropout`` is ours: it asks
the *numpy* Generator for its mask through :func:`doodlelab.nn.modules.dropout_scale`,
the very function the core calls, so a numpy model and its twin that hold
Generators in the same state drop the same units. (Inside one training run the
twin simply holds the run's dropout stream, so it draws what the numpy run draws.)

Layout convention: the core stores a ``Linear`` weight ``(in, out)`` and computes
``x @ W``; torch stores ``(out, in)`` and computes ``x @ W.T``. Every function here
that moves arrays between the two (:func:`from_numpy`, :func:`load_numpy_state`,
:func:`numpy_state`, :func:`numpy_grads`, :func:`numpy_layout`, :func:`torch_layout`)
transposes ``Linear`` weights, so state dicts on the numpy side always use the core's
layout and the same dotted names.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.nn import LeakyReLU, Linear, ReLU, Sequential, Sigmoid, Tanh

from doodlelab import nn
from doodlelab.config import ModelConfig
from doodlelab.geometry import N_PIXELS
from doodlelab.nn.modules import dropout_scale
from doodlelab.tasks.mlp import N_CLASSES
from doodlelab.tasks.mlp import build_mlp as build_numpy_mlp

TORCH_DTYPES: dict[np.dtype, torch.dtype] = {
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float64): torch.float64,
}
NUMPY_DTYPES: dict[torch.dtype, np.dtype] = {t: n for n, t in TORCH_DTYPES.items()}


def torch_dtype(dtype: np.dtype | type) -> torch.dtype:
    """Return the torch dtype of numpy ``float32`` or ``float64``."""
    key = np.dtype(dtype)
    if key not in TORCH_DTYPES:
        raise ValueError(f"the torch twin runs in float32 or float64, not {key}")
    return TORCH_DTYPES[key]


class Dropout(torch.nn.Module):
    """Inverted dropout whose masks come from a numpy Generator, as in the core.

    In training mode each call draws ``dropout_scale(rng, x.shape, p, dtype)``:
    0 with probability ``p``, else ``1/(1-p)``; eval mode is the identity. When ``shard``
    is ``(n, rows)``, ``x`` holds rows ``rows`` of a global batch of ``n``: the mask of all
    ``n`` rows is drawn and the slice used, so processes sharing the batch stay in step.
    """

    shard: tuple[int, slice] | None = None

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.rng = rng

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x * mask`` in training mode, ``x`` otherwise; shape unchanged."""
        if not self.training or self.p == 0.0:
            return x
        if self.shard is None:
            scale = dropout_scale(self.rng, tuple(x.shape), self.p, NUMPY_DTYPES[x.dtype])
        else:
            n, rows = self.shard
            scale = dropout_scale(self.rng, (n, *x.shape[1:]), self.p, NUMPY_DTYPES[x.dtype])[rows]
        return x * torch.from_numpy(np.ascontiguousarray(scale)).to(x.device)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class L2Normalize(torch.nn.Module):
    """Rows scaled to unit length, ``F.normalize(x, dim=1, eps=eps)``: (B, D) -> (B, D)."""

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x / max(|x|, eps)`` row by row."""
        return torch.nn.functional.normalize(x, dim=1, eps=self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps:g}"


ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
}


def _linear(m: nn.Linear, dropout_rng: np.random.Generator | None) -> torch.nn.Module:
    weight = m.params["weight"]
    twin = torch.nn.utils.skip_init(
        Linear, m.in_features, m.out_features, bias="bias" in m.params,
        dtype=torch_dtype(weight.dtype),
    )
    load_numpy_state(twin, m.params)
    return twin


def _sequential(m: nn.Sequential, dropout_rng: np.random.Generator | None) -> torch.nn.Module:
    return Sequential(*(from_numpy(layer, dropout_rng=dropout_rng) for layer in m.layers))


# One entry per numpy module type: how to build its twin.
_CONVERTERS: dict[type, Callable[..., torch.nn.Module]] = {
    nn.Linear: _linear,
    nn.ReLU: lambda m, _: ReLU(),
    nn.LeakyReLU: lambda m, _: LeakyReLU(m.negative_slope),
    nn.Tanh: lambda m, _: Tanh(),
    nn.Sigmoid: lambda m, _: Sigmoid(),
    nn.Dropout: lambda m, rng: Dropout(m.p, rng=m.rng if rng is None else rng),
    nn.L2Normalize: lambda m, _: L2Normalize(m.eps),
    nn.Sequential: _sequential,
}


def from_numpy(
    module: nn.Module, *, dropout_rng: np.random.Generator | None = None
) -> torch.nn.Module:
    """Return the torch twin of a numpy module: same structure, names, weights and mode.

    Parameters keep the numpy dtype. Each ``Dropout`` draws from ``dropout_rng`` if
    given, else from the numpy layer's own Generator (the same object, not a copy).
    """
    convert = _CONVERTERS.get(type(module))
    if convert is None:
        raise TypeError(f"no torch twin for numpy module {type(module).__name__}")
    return convert(module, dropout_rng).train(module.training)


def build_mlp(
    cfg: ModelConfig,
    *,
    rng: np.random.Generator,
    dropout_rng: np.random.Generator,
    n_in: int = N_PIXELS,
    n_out: int = N_CLASSES,
    dtype: np.dtype | type = np.float32,
) -> Sequential:
    """Return the twin of :func:`doodlelab.tasks.mlp.build_mlp`: (B, n_in) -> (B, n_out).

    The numpy MLP is built first from the same Generators, so the initial weights
    are the very same draws, and then copied.
    """
    numpy_mlp = build_numpy_mlp(cfg, rng=rng, dropout_rng=dropout_rng, n_in=n_in, n_out=n_out,
                                dtype=dtype)
    return from_numpy(numpy_mlp)


def _transposed_names(model: torch.nn.Module) -> set[str]:
    """Return the dotted names of the ``Linear`` weights (stored transposed in the core)."""
    return {f"{name}.weight" if name else "weight"
            for name, m in model.named_modules() if isinstance(m, Linear)}


def numpy_layout(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Return copies of ``model``-shaped tensors in numpy layout (Linear weights transposed), by name."""
    flip = _transposed_names(model)
    out = {}
    for name, t in tensors.items():
        arr = t.detach().cpu().numpy()
        out[name] = (arr.T if name in flip else arr).copy()  # C-contiguous copy
    return out


def numpy_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Return copies of the twin's parameters in numpy layout (Linear weight (in, out))."""
    return numpy_layout(model, dict(model.named_parameters()))


def numpy_grads(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Return the twin's ``.grad`` tensors in numpy layout (zeros where there is none)."""
    grads = {name: p.grad if p.grad is not None else torch.zeros_like(p)
             for name, p in model.named_parameters()}
    return numpy_layout(model, grads)


def load_numpy_state(model: torch.nn.Module, state: dict[str, np.ndarray]) -> None:
    """Copy numpy-layout arrays into the twin's parameters in place (keeps optimizer references).

    Raises KeyError on missing or unexpected names and ValueError on a wrong shape,
    like :meth:`doodlelab.nn.Module.load_state_dict`.
    """
    own = dict(model.named_parameters())
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise KeyError(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
    flip = _transposed_names(model)
    with torch.no_grad():
        for name, p in own.items():
            value = np.asarray(state[name])
            value = value.T if name in flip else value
            if value.shape != tuple(p.shape):
                shown = value.T.shape if name in flip else value.shape
                expected = tuple(p.shape)[::-1] if name in flip else tuple(p.shape)
                raise ValueError(f"{name}: shape {shown} does not match {expected}")
            p.copy_(torch.from_numpy(np.array(value, order="C")))  # a writable copy


def torch_layout(model: torch.nn.Module, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Return numpy-layout arrays named like ``model``'s parameters as torch tensors of its layout."""
    flip = _transposed_names(model)
    return {name: torch.from_numpy(np.array(a.T if name in flip else a, order="C"))
            for name, a in arrays.items()}
