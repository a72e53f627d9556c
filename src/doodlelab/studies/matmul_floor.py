"""The matrix-product floor of a training epoch: its products, their FLOPs, the GEMM peak.

:func:`epoch_products` lists every ``(m, k) @ (k, p)`` product one epoch of the
classifier does; :func:`epoch_flops` counts them; :func:`gemm_gflops` measures the
float32 GEMM rate on a large square product; :func:`matmul_backend` times those
products alone at the training shapes. :mod:`doodlelab.studies.bench` sets the
backends' epochs against them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from doodlelab.config import Config
from doodlelab.geometry import N_PIXELS
from doodlelab.tasks.mlp import N_CLASSES
from doodlelab.tasks.threads import blas_threads, matmul_threads, usable_cpus

GEMM_SIZE = 2048  # side of the square float32 product that measures the GEMM peak


def layer_sizes(cfg: Config) -> list[int]:
    """Return the widths ``[784, *hidden, 5]`` of the classifier ``cfg`` describes."""
    return [N_PIXELS, *cfg.model.hidden, N_CLASSES]


def epoch_flops(cfg: Config, n: int) -> float:
    """Return the matrix-product FLOPs of one training epoch over ``n`` images.

    Per ``Linear`` (in, out) and image: 2*in*out forward, 2*in*out for the weight
    gradient, 2*in*out for the input gradient except in the first layer.
    """
    sizes = layer_sizes(cfg)
    pairs = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return float(n * (2 * sum(pairs) + 2 * sum(pairs) + 2 * sum(pairs[1:])))


def epoch_products(cfg: Config, n: int) -> list[tuple[int, int, int]]:
    """Return ``(m, k, p)`` of every ``(m, k) @ (k, p)`` product of one training epoch, in order.

    Per batch of ``b`` images, for each ``Linear`` (in, out): forward ``(b, in) @ (in, out)``;
    then, from the last layer down, weight gradient ``(in, b) @ (b, out)`` and input
    gradient ``(b, out) @ (out, in)`` (not for the first layer: images need none).
    """
    sizes = layer_sizes(cfg)
    layers = list(zip(sizes[:-1], sizes[1:]))
    products = []
    for start in range(0, n, cfg.train.batch_size):
        b = min(cfg.train.batch_size, n - start)
        products += [(b, i, o) for i, o in layers]
        for depth in range(len(layers) - 1, -1, -1):
            i, o = layers[depth]
            products.append((i, b, o))
            if depth:
                products.append((b, o, i))
    return products


def gemm_gflops(size: int = GEMM_SIZE, threads: int | None = None, repeats: int = 5) -> float:
    """Return the best float32 GFLOP/s of ``size x size`` matrix products on ``threads`` BLAS threads."""
    rng = np.random.default_rng(1)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    out = np.empty_like(a)
    best = float("inf")
    with blas_threads(threads or usable_cpus()):
        np.matmul(a, b, out=out)  # warm-up: page in, spin up the thread pool
        for _ in range(repeats):
            tick = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - tick)
    return 2.0 * size**3 / best / 1e9


def matmul_backend(cfg: Config, x: np.ndarray, y: np.ndarray, seed: int) -> Callable[[], float]:
    """Return a function that times only the matrix products of one epoch (:func:`epoch_products`).

    The products run in the training order on the images' consecutive batches,
    with float32 weights of the classifier's shapes and the training thread count;
    nothing else (no bias, activation, loss, dropout or optimizer).
    """
    sizes = layer_sizes(cfg)
    return products_timer(sizes, cfg.train.batch_size, x[: y.shape[0]], seed,
                          threads=matmul_threads(cfg.train.batch_size, sizes))


def products_timer(sizes: list[int], batch_size: int, x: np.ndarray, seed: int, *, threads: int = 1,
                   backward: bool = True) -> Callable[[], float]:
    """Return a function that times the products of one pass over ``x`` through an MLP of ``sizes``.

    ``backward``: a training epoch's products (:func:`epoch_products`); otherwise the forward
    products only, as scoring a split does. Float32 weights of those shapes, ``batch_size`` rows
    at a time, on ``threads`` BLAS threads.
    """
    rng = np.random.default_rng([seed, 2])
    weights = [(rng.standard_normal((a, b), dtype=np.float32) / np.float32(np.sqrt(a)))
               for a, b in zip(sizes[:-1], sizes[1:])]

    def epoch() -> float:
        with blas_threads(threads):
            tick = time.perf_counter()
            for start in range(0, x.shape[0], batch_size):
                acts = [x[start : start + batch_size]]
                for w in weights:
                    acts.append(acts[-1] @ w)  # (b, out)
                if not backward:
                    continue
                grad = acts[-1]
                for depth in range(len(weights) - 1, -1, -1):
                    acts[depth].T @ grad  # weight gradient (in, out), discarded
                    if depth:
                        grad = grad @ weights[depth].T  # (b, in)
            return time.perf_counter() - tick

    return epoch
