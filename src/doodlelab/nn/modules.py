"""Layers of the numpy core.

Every module keeps ``params`` and ``grads``: two dicts with the same keys whose
arrays have the same shapes. ``forward(x)`` caches only what ``backward`` needs;
``backward(dout)`` *adds* the parameter gradients into ``grads`` and returns the
gradient with respect to the module's input. Gradients are zeroed explicitly with
``zero_grad()``. ``backward_assign(dout)`` is ``zero_grad()`` then ``backward(dout)`` in
one: the gradients are *set* to this pass's (what a training step wants, as torch's
``zero_grad(set_to_none=True)`` then ``backward()``); a ``Linear`` writes them straight
into ``grads``, without the zero fill and the add. Names follow torch (``Linear``, ``ReLU``, ``Sequential``,
``named_parameters``, ``train()/eval()``) so that :mod:`doodlelab.twin` reads line
for line like this file.

Layout convention: a ``Linear`` weight is stored ``(in_features, out_features)`` so
the forward pass is ``x @ W + b``; torch stores the transpose ``(out, in)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from doodlelab.nn import init as nninit


class Module:
    """Base class: parameter/gradient dicts, train/eval mode, recursion over children."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.training = True

    # -- the two methods every layer implements ---------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Return the layer output for input ``x`` and cache what backward needs."""
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Accumulate parameter gradients and return d(loss)/d(input)."""
        raise NotImplementedError

    def accumulate_grads(self, dout: np.ndarray) -> None:
        """Accumulate parameter gradients only, for when nothing needs d(loss)/d(input)."""
        self.backward(dout)

    def backward_assign(self, dout: np.ndarray) -> np.ndarray:
        """Set the parameter gradients to this pass's (``zero_grad``, ``backward``); return d(loss)/d(x)."""
        self.zero_grad()
        return self.backward(dout)

    def assign_grads(self, dout: np.ndarray) -> None:
        """Set the parameter gradients to this pass's (``zero_grad`` + ``accumulate_grads``)."""
        self.zero_grad()
        self.accumulate_grads(dout)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    # -- bookkeeping shared by all modules ---------------------------------------
    def children(self) -> list[tuple[str, Module]]:
        """Return the direct sub-modules as ``(name, module)`` pairs."""
        return []

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """Yield ``(dotted_name, param, grad)`` for this module and its children."""
        for key, value in self.params.items():
            yield prefix + key, value, self.grads[key]
        for name, child in self.children():
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Return ``(param, grad)`` array pairs, the references an optimizer updates."""
        return [(p, g) for _, p, g in self.named_parameters()]

    def zero_grad(self) -> None:
        """Set every gradient to zero in place."""
        for _, _, g in self.named_parameters():
            g.fill(0)

    def train(self, mode: bool = True) -> Module:
        """Switch training behaviour (dropout) on or off, recursively; returns self."""
        self.training = mode
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        """Shorthand for ``train(False)``."""
        return self.train(False)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return copies of all parameters keyed by dotted name."""
        return {name: p.copy() for name, p, _ in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy ``state`` into the existing parameter arrays (keeps optimizer references)."""
        own = {name: p for name, p, _ in self.named_parameters()}
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
        for name, p in own.items():
            value = np.asarray(state[name])
            if value.shape != p.shape:
                raise ValueError(f"{name}: shape {value.shape} does not match {p.shape}")
            p[...] = value

    def astype(self, dtype: np.dtype | type) -> Module:
        """Convert every parameter (and gradient) to ``dtype`` in place; returns self."""
        for _, child in self.children():
            child.astype(dtype)
        for key in list(self.params):
            self.params[key] = self.params[key].astype(dtype)
            self.grads[key] = np.zeros_like(self.params[key])
        return self

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        kids = self.children()
        if not kids:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): {child!r}" for name, child in kids]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class Linear(Module):
    """Affine map ``y = x @ W + b``: (B, in) -> (B, out)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        rng: np.random.Generator,
        init: str = "he_normal",
        bias: bool = True,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.params["weight"] = nninit.initialize(
            init, (in_features, out_features), rng=rng, dtype=dtype
        )
        if bias:
            self.params["bias"] = np.zeros(out_features, dtype=dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        out = x @ self.params["weight"]  # (B, out), a fresh array: add the bias in place
        if "bias" in self.params:
            out += self.params["bias"]
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        self.accumulate_grads(dout)
        return dout @ self.params["weight"].T  # (B, in)

    def accumulate_grads(self, dout: np.ndarray) -> None:
        self.grads["weight"] += self._x.T @ dout  # (in, out)
        if "bias" in self.params:
            self.grads["bias"] += dout.sum(axis=0)

    def backward_assign(self, dout: np.ndarray) -> np.ndarray:
        self.assign_grads(dout)
        return dout @ self.params["weight"].T  # (B, in)

    def assign_grads(self, dout: np.ndarray) -> None:
        # The same products as accumulate_grads, written into grads instead of added to zeros
        # (the same values; a -0.0 may stay -0.0): no zero fill, no temporary, no add pass.
        np.matmul(self._x.T, dout, out=self.grads["weight"])  # (in, out)
        if "bias" in self.params:
            np.sum(dout, axis=0, out=self.grads["bias"])

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class ReLU(Module):
    """Elementwise ``max(x, 0)``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0  # (B, D) bool, all that backward needs
        # Multiplying by the mask is ~5x faster than np.where; it differs only for
        # non-finite inputs (NaN stays NaN, as in torch), which the fit loop stops on.
        return x * self._mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self._mask


class LeakyReLU(Module):
    """Elementwise ``x if x > 0 else slope * x`` (torch's default slope 0.01)."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return np.where(self._mask, x, x * x.dtype.type(self.negative_slope))

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return np.where(self._mask, dout, dout * dout.dtype.type(self.negative_slope))

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    """Elementwise hyperbolic tangent."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.tanh(x)
        return self._y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1 - self._y * self._y)


class Sigmoid(Module):
    """Elementwise logistic function, computed without overflow for large |x|."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        # 1/(1+e^-x) overflows for very negative x; split by sign instead.
        e = np.exp(-np.abs(x))
        self._y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        return self._y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self._y * (1 - self._y)


class L2Normalize(Module):
    """Scale every row to unit Euclidean length: (B, D) -> (B, D), as ``F.normalize(x, dim=1)``.

    A row shorter than ``eps`` is divided by ``eps`` instead (torch's convention), so
    a zero row stays zero rather than becoming NaN.
    """

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: np.ndarray) -> np.ndarray:
        norm = np.sqrt((x * x).sum(axis=1, keepdims=True))  # (B, 1)
        self._clamped = norm < self.eps  # torch clamp_min: a norm of exactly eps is not clamped
        self._norm = np.maximum(norm, x.dtype.type(self.eps))
        self._y = x / self._norm
        return self._y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        # The Jacobian of y = x/|x| is (I - y y^T) / |x|: drop dout's component along y
        # (moving along y only changes the length, which the output forgets), then
        # scale by 1/|x|. Clamped rows are x/eps, a linear map with gradient dout/eps.
        y = self._y
        radial = (dout * y).sum(axis=1, keepdims=True)  # (B, 1)
        grad = np.where(self._clamped, dout, dout - y * radial)
        return grad / self._norm

    def extra_repr(self) -> str:
        return f"eps={self.eps:g}"


class Dropout(Module):
    """Inverted dropout: zero each unit with probability ``p`` and scale the rest by 1/(1-p).

    The mask comes from the Generator handed in, so a run is reproducible and the
    torch twin can draw the very same masks from a Generator with the same seed.
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.rng = rng
        self._scale: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.p == 0.0:
            self._scale = None
            return x
        self._scale = dropout_scale(self.rng, x.shape, self.p, x.dtype)
        return x * self._scale

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout if self._scale is None else dout * self._scale

    def extra_repr(self) -> str:
        return f"p={self.p}"


def dropout_scale(
    rng: np.random.Generator, shape: tuple[int, ...], p: float, dtype: np.dtype
) -> np.ndarray:
    """Return the inverted-dropout multiplier: 0 with probability p, else 1/(1-p)."""
    keep = rng.random(shape, dtype=np.float32) >= p
    return keep.astype(dtype) * np.asarray(1.0 / (1.0 - p), dtype=dtype)


class Sequential(Module):
    """Chain of modules; children are named "0", "1", ... as in torch."""

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        self.layers = list(layers)

    def children(self) -> list[tuple[str, Module]]:
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout: np.ndarray, *, input_grad: bool = True,
                 accumulate: bool = True) -> np.ndarray | None:
        """Backpropagate ``dout`` through every layer; return d(loss)/d(input).

        With ``input_grad=False`` (a batch of images needs no gradient, and torch's
        autograd skips it too) the first layer with parameters only accumulates its
        gradients, the layers before it are skipped, and None is returned. With
        ``accumulate=False`` every layer's gradients are set to this pass's instead of
        added (:meth:`Module.backward_assign`), as after ``zero_grad``.
        """
        stop = 0 if input_grad else self._first_with_params()
        for layer in reversed(self.layers[stop + 1 :]):
            dout = layer.backward(dout) if accumulate else layer.backward_assign(dout)
        if input_grad:
            if not self.layers:
                return dout
            return self.layers[0].backward(dout) if accumulate else self.layers[0].backward_assign(dout)
        if stop < len(self.layers):
            if accumulate:
                self.layers[stop].accumulate_grads(dout)
            else:
                self.layers[stop].assign_grads(dout)
        return None

    def accumulate_grads(self, dout: np.ndarray) -> None:
        self.backward(dout, input_grad=False)

    def backward_assign(self, dout: np.ndarray) -> np.ndarray:
        return self.backward(dout, accumulate=False)  # type: ignore[return-value]

    def assign_grads(self, dout: np.ndarray) -> None:
        self.backward(dout, input_grad=False, accumulate=False)

    def _first_with_params(self) -> int:
        """Return the index of the first layer holding parameters (len(layers) if none)."""
        for i, layer in enumerate(self.layers):
            if next(layer.named_parameters(), None) is not None:
                return i
        return len(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]


ACTIVATIONS: dict[str, type[Module]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
}
