"""The first-iteration gradient comparison of the numpy core against torch autograd.

Both backends get a classifier built from one seed (the twin copies the numpy
initial weights), the same dropout masks (each draws from its own Generator seeded
like the other) and the same first mini-batch. Every parameter gradient of the
training objective (the classifier: cross-entropy, plus the explicit L2 term if any) is
compared, in float64 and in float32 (the two-tower model: its configured objective,
``--set two_tower.loss=...``). Both then keep training for a few more optimizer steps
on the following mini-batches, and the parameters are compared again, so the
momentum, Nesterov and weight-decay formulas are shown equal as well.

With prepared data the batches are the first ones :func:`doodlelab.training.fit.fit` trains on,
drawn by the fit loop's own generator (:func:`doodlelab.training.fit.training_batches`: same
split, shuffle order, augmentation and learning rate); without data they are seeded
uniform-noise images with random labels. Both tasks come from :mod:`doodlelab.training.registry`.

The report is a dict ready for JSON::

    {"thresholds": {"float64": 1e-10, "float32": 0.0005}, "passed": true, "failures": [],
     "classifier": {"batch": {...}, "model": {...}, "passed": true,
                    "float64": [{"param": "0.weight", "shape": [784, 512],
                                 "max_abs_diff": ..., "max_rel_diff": ..., "cosine": ...}, ...],
                    "float32": [...],
                    "optimizer": {"steps": 5, "float64": {...}, "float32": {...}}}}

Every gradient and parameter tensor is judged by its floored relative error
(:func:`relative_error`), never by an absolute difference: the word tower's gradients
reach ~1e12 when a class vector's embedding is a zero row (the normalisation's floor),
and an absolute limit would fail there on float rounding alone.

The float32 parameters after the optimizer steps are judged against 1% of the model's
largest parameter instead (``max_model_rel_param_diff``; float64 keeps the per-tensor
measure). A hinge objective is not smooth: a term that sits at its kink after one step
can switch on in one implementation and off in the other by float32 rounding, and the
next step then differs by one term's gradient. On a bias that is still near zero, that
one step is a large ratio of the bias's own entries though it is a rounding-sized
difference of the model (measured: 4.7e-6 absolute, the margin 0.25 and batches of 256;
float64 agrees to 6e-14 on the same steps).

Another model (the two-tower one) adds a key of the same shape next to ``classifier``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np

from doodlelab.config import Config, add_config_args
from doodlelab.data.course import add_data_arg
from doodlelab.data.prepare import Prepared
from doodlelab.errors import UserError
from doodlelab.geometry import N_PIXELS
from doodlelab.kinds import BACKENDS, CLASSIFIER, KINDS, NUMPY, Kind
from doodlelab.tasks.mlp import N_CLASSES
from doodlelab.tasks.protocol import Task
from doodlelab.tasks.streams import Streams
from doodlelab.training.fit import Batch, schedule_from, training_batches
from doodlelab.training.registry import make_task, require_torch, spec

# Limits on the floored relative error (:func:`relative_error`) of every gradient and parameter.
THRESHOLDS: dict[str, float] = {"float64": 1e-10, "float32": 5e-4}
# Limits on the parameters after the optimizer steps: float64 per tensor as above; float32 against 1% of
# the model's largest parameter, with room for one hinge term switched by rounding (see the docstring).
STEP_THRESHOLDS: dict[str, float] = {"float64": 1e-10, "float32": 5e-3}
REL_FLOOR = 1e-2  # entries below 1 % of a tensor's largest are judged against that 1 %
DTYPES: dict[str, type] = {"float64": np.float64, "float32": np.float32}


def first_batches(data: Prepared, cfg: Config, n: int) -> list[Batch]:
    """Return the first ``n`` mini-batches that ``fit`` trains on with ``cfg`` and ``data``'s split."""
    train, idx = data.train, data.train_idx
    streams = Streams.from_seed(cfg.train.seed)
    batches = training_batches(train.x[idx], train.y[idx], cfg, streams.shuffle, streams.augment)
    return list(itertools.islice(batches, n))


def synthetic_batches(cfg: Config, n: int) -> list[Batch]:
    """Return ``n`` seeded batches of uniform-noise images (B, 784) and random labels (B,)."""
    rng = np.random.default_rng([cfg.train.seed, 0x9C])
    size = cfg.train.batch_size
    return [Batch(0, rng.random((size, N_PIXELS), dtype=np.float32), rng.integers(0, N_CLASSES, size))
            for _ in range(n)]


def relative_error(a: np.ndarray, b: np.ndarray, floor: float = REL_FLOOR) -> float:
    """Return max_i |a_i - b_i| / max(|a_i|, |b_i|, floor * largest |entry|) of two same-shape arrays.

    Each entry is judged against its own size, so the measure does not depend on the
    tensor's scale (a word tower whose gradients reach 1e12 is judged like one at 1e-2).
    Entries smaller than ``floor`` times the largest entry are judged against that floor
    instead: an entry that is ~0 by cancellation would otherwise turn float32 rounding
    noise into a meaningless "25 % relative error". Two all-zero arrays give 0.
    """
    a64, b64 = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a64.size == 0:
        return 0.0
    size = np.maximum(np.abs(a64), np.abs(b64))  # (N,)
    scale = float(np.max(size))
    if not np.isfinite(scale):
        return 0.0 if np.array_equal(a64, b64) else float("nan")
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(a64 - b64) / np.maximum(size, floor * scale)))


def compare_arrays(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Return max |a - b|, the floored relative error (:func:`relative_error`) and the cosine."""
    a64, b64 = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a64.size == 0:
        return {"max_abs_diff": 0.0, "max_rel_diff": 0.0, "cosine": 1.0}
    scale = float(max(np.max(np.abs(a64)), np.max(np.abs(b64))))
    norms = float(np.linalg.norm(a64) * np.linalg.norm(b64))
    if norms > 0:
        cosine = float(a64 @ b64) / norms
    else:
        cosine = 1.0 if scale == 0 else 0.0
    return {
        "max_abs_diff": float(np.max(np.abs(a64 - b64))),
        "max_rel_diff": relative_error(a64, b64),
        "cosine": cosine,
    }


def _pair(cfg: Config, dtype: type, n_classes: int, kind: Kind,
          class_vectors: np.ndarray | None) -> tuple[Task, Task]:
    """Return a numpy task and its torch twin built from the same seed."""
    core, twin = (make_task(cfg, backend, kind, class_vectors=class_vectors, n_classes=n_classes,
                            dtype=dtype) for backend in BACKENDS)
    return core, twin


def check_task(cfg: Config, batches: list[Batch], dtype_name: str, n_classes: int = N_CLASSES,
               kind: Kind = CLASSIFIER, class_vectors: np.ndarray | None = None) -> dict[str, Any]:
    """Train a numpy model and its torch twin side by side on ``batches`` in one dtype.

    ``kind`` is the model kind (one with word vectors needs ``class_vectors`` (K, D)).
    Returns ``{"gradients": [per-parameter row of the first step], "optimizer":
    {steps, max_abs_param_diff, max_rel_param_diff, worst_param,
    max_abs_objective_diff}}``.
    """
    dtype = DTYPES[dtype_name]
    core, twin = _pair(cfg, dtype, n_classes, kind, class_vectors)
    schedule = schedule_from(cfg)
    rows: list[dict[str, Any]] = []
    objective_diff = 0.0
    for step, batch in enumerate(batches):
        lr = schedule(batch.position)
        core.set_lr(lr)
        twin.set_lr(lr)
        x = batch.x.astype(dtype)
        core_objective, _ = core.train_batch(x, batch.y)
        twin_objective, _ = twin.train_batch(x, batch.y)
        objective_diff = max(objective_diff, abs(core_objective - twin_objective))
        if step == 0:  # gradients at the identical initial weights
            twin_grads = twin.grads()
            rows = [{"param": name, "shape": list(g.shape), **compare_arrays(g, twin_grads[name])}
                    for name, g in core.grads().items()]
    core_state, twin_state = core.state_dict(), twin.state_dict()
    param_diffs = {name: compare_arrays(core_state[name], twin_state[name]) for name in core_state}
    worst = max(param_diffs, key=lambda name: _nan_high(param_diffs[name]["max_rel_diff"]))
    # Judged against the whole model's largest parameter: a bias still near zero after a few steps
    # would turn one rounding-sized step into a large ratio of its own tiny entries (see the docstring).
    largest = max(float(np.max(np.abs(v))) for v in core_state.values())
    model_rel = max(d["max_abs_diff"] for d in param_diffs.values()) / max(largest * REL_FLOOR, 1e-30)
    return {
        "gradients": rows,
        "optimizer": {
            "max_model_rel_param_diff": model_rel,
            "steps": len(batches),
            "max_abs_param_diff": max(d["max_abs_diff"] for d in param_diffs.values()),
            "max_rel_param_diff": param_diffs[worst]["max_rel_diff"],
            "worst_param": worst,
            "max_abs_objective_diff": objective_diff,
        },
    }


def _model_info(cfg: Config, kind: Kind, n_classes: int, vectors: np.ndarray | None) -> dict[str, Any]:
    """Return the architecture block of one model's report."""
    m = cfg.model
    widths = make_task(cfg, NUMPY, kind, class_vectors=vectors, n_classes=n_classes).widths
    info: dict[str, Any] = {"layers": list(widths), "activation": m.activation,
                            "dropout": m.dropout, "input_dropout": m.input_dropout}
    if vectors is not None:
        t = cfg.two_tower
        info["word_tower"] = [int(vectors.shape[1]), *t.text_hidden, t.embed_dim]
        info["objective"] = {"loss": t.loss, "margin": t.margin, "align_weight": t.align_weight}
    return info


def run_gradcheck(cfg: Config, data: Prepared | None = None, steps: int = 5,
                  kinds: tuple[Kind, ...] = (CLASSIFIER,),
                  class_vectors: np.ndarray | None = None) -> dict[str, Any]:
    """Return the full gradcheck report (see the module docstring) for the model ``kinds``.

    ``data`` given: the first ``steps`` training batches of ``cfg`` on it (and its class
    vectors); ``None``: seeded synthetic batches of the course's five classes. A kind with
    word vectors needs class vectors (K, D): ``class_vectors`` or ``data``'s.
    """
    n_classes = N_CLASSES
    if data is None:
        batches = synthetic_batches(cfg, steps)
        batch_info: dict[str, Any] = {"source": "synthetic", "seed": cfg.train.seed}
    else:
        n_classes = len(data.classes)
        batches = first_batches(data, cfg, steps)
        batch_info = {"source": "data", "data_dir": str(Path(data.data_dir).resolve()),
                      "seed": cfg.train.seed, "augmented": cfg.augment.enabled}
        class_vectors = data.class_vectors if class_vectors is None else class_vectors
    batch_info["size"] = int(batches[0].y.shape[0])
    report: dict[str, Any] = {"thresholds": dict(THRESHOLDS), "step_thresholds": dict(STEP_THRESHOLDS),
                              "failures": []}
    for kind in kinds:
        vectors = class_vectors if spec(kind).word_vectors else None
        model: dict[str, Any] = {"batch": batch_info, "model": _model_info(cfg, kind, n_classes, vectors),
                                 "optimizer": {"steps": len(batches)}}
        for name in DTYPES:
            result = check_task(cfg, batches, name, n_classes, kind, vectors)
            model[name] = result["gradients"]
            model["optimizer"][name] = {k: v for k, v in result["optimizer"].items() if k != "steps"}
        problems = failures(model)
        model["passed"] = not problems
        report["failures"] += [f"{kind}: {p}" for p in problems]
        report[kind] = model
    report["passed"] = not report["failures"]
    return report


def _nan_high(value: float) -> float:
    return float("inf") if value != value else value


def failures(model: dict[str, Any]) -> list[str]:
    """Return one message per gradient or trajectory relative error above its threshold."""
    out = []
    for name, limit in THRESHOLDS.items():
        for row in model[name]:
            if not row["max_rel_diff"] <= limit:  # also catches NaN
                out.append(f"{name} gradient of {row['param']} differs by "
                           f"{row['max_rel_diff']:.3g} (relative) > {limit:g}")
        traj, step_limit = model["optimizer"][name], STEP_THRESHOLDS[name]
        measure = "max_rel_param_diff" if name == "float64" else "max_model_rel_param_diff"
        if not traj[measure] <= step_limit:
            out.append(f"{name} parameters after {model['optimizer']['steps']} steps differ by "
                       f"{traj[measure]:.3g} (relative, {traj['worst_param']}) > {step_limit:g}")
    return out


def format_report(report: dict[str, Any]) -> str:
    """Return the report as a readable table, one block per model."""
    lines = []
    for model_name, model in report.items():
        if not isinstance(model, dict) or "optimizer" not in model:
            continue
        batch = model["batch"]
        source = ("synthetic noise" if batch["source"] == "synthetic"
                  else f"first training batch of {batch['data_dir']}")
        lines.append(f"{model_name}: numpy backprop vs torch autograd, {batch['size']} images "
                     f"({source}, seed {batch['seed']})")
        if "model" in model:
            arch = model["model"]
            lines.append(f"  model {'-'.join(map(str, arch['layers']))}, {arch['activation']}, "
                         f"dropout {arch['dropout']:g} (input {arch['input_dropout']:g}), "
                         "the same dropout masks on both sides")
        lines.append(f"  {'dtype':<8} {'param':<15} {'shape':<10} {'max_abs_diff':>13} "
                     f"{'max_rel_diff':>13} {'cosine':>18}")
        for dtype_name in THRESHOLDS:
            for row in model[dtype_name]:
                shape = "x".join(str(s) for s in row["shape"])
                lines.append(f"  {dtype_name:<8} {row['param']:<15} {shape:<10} "
                             f"{row['max_abs_diff']:>13.3e} {row['max_rel_diff']:>13.3e} "
                             f"{row['cosine']:>18.15f}")
        lines.append(f"  (max_rel_diff = max |numpy - torch| / max(|entry|, {REL_FLOOR:g} x largest "
                     "|entry| of the tensor); judged against the limits)")
        opt = model["optimizer"]
        lines.append(f"  after {opt['steps']} optimizer steps on both, max |param diff|: " + ", ".join(
            f"{d} {opt[d]['max_abs_param_diff']:.3e} (relative {opt[d]['max_rel_param_diff']:.3e}, "
            f"{opt[d]['worst_param']})" for d in THRESHOLDS))
        for dtype_name, limit in THRESHOLDS.items():
            worst = max(_nan_high(r["max_rel_diff"]) for r in model[dtype_name])
            measure = "max_rel_param_diff" if dtype_name == "float64" else "max_model_rel_param_diff"
            steps, step_limit = _nan_high(opt[dtype_name][measure]), STEP_THRESHOLDS[dtype_name]
            verdict = "ok" if worst <= limit and steps <= step_limit else "FAILED"
            lines.append(f"  {dtype_name}: gradients {worst:.3e} <= {limit:g}, parameters after the steps "
                         f"{steps:.3e} <= {step_limit:g}? {verdict}")
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``gradcheck`` to the ``doodlelab`` subcommands."""
    p = subparsers.add_parser("gradcheck", help="numpy backprop vs torch autograd on the first batch")
    add_data_arg(p, "course folder whose first training batch to use (default: a seeded synthetic batch)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the report here")
    p.add_argument("--steps", type=int, default=5, metavar="N",
                   help="optimizer steps whose parameters are compared too (default 5)")
    p.add_argument("--model", choices=[*KINDS, "all"], default=CLASSIFIER,
                   help=f"which model to check (default {CLASSIFIER})")
    add_config_args(p)


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab gradcheck``; return 0, or 1 if a difference is above its threshold."""
    from doodlelab.config import load_config
    from doodlelab.data.course import CLASSES
    from doodlelab.data.prepare import class_word_vectors, prepare
    from doodlelab.files.atomic import write_json

    cfg = load_config(args.config, args.overrides)
    if not 1 <= args.steps <= 100:
        raise UserError(f"--steps must be in [1, 100] (got {args.steps})")
    kinds = KINDS if args.model == "all" else (args.model,)
    word_vectors = any(spec(kind).word_vectors for kind in kinds)
    data, vectors = None, None
    if args.data is not None:
        data = prepare(cfg, args.data, test=False, word_vectors=word_vectors)
    elif word_vectors:
        vectors = class_word_vectors(cfg.two_tower.word_vectors, CLASSES)[0]
    require_torch("gradcheck")
    report = run_gradcheck(cfg, data, steps=args.steps, kinds=kinds, class_vectors=vectors)
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
    for problem in report["failures"]:
        print(f"doodlelab: gradcheck failed: {problem}", file=sys.stderr)
    return 0 if report["passed"] else 1
