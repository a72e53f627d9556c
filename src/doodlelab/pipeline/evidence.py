"""The report's own figures, drawn from finished runs and the data: each an SVG with the CSV of its numbers.

- :func:`curves`: the objective and the accuracy per epoch of a model's numpy and torch runs,
  on the training and validation splits, the y axis naming the objective actually minimised;
- :func:`objective_terms`: a two-tower run's objective and its weighted terms, on the training
  batches and on validation, so the plotted terms add up to the plotted objective;
- :func:`confusions`: the most frequent confusions of a run on the test images, with examples;
- :func:`init_gradients`: the gradient norm of every layer at initialisation, per activation.

Figures print about 8 cm wide with 7-8 pt text (``REPORT_RC``); text stays text in the SVG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from doodlelab.config import Config
from doodlelab.files.atomic import write_csv
from doodlelab.kinds import KINDS, Kind
from doodlelab.training.figures import EMBEDDINGS, FIRST_LAYER, REPORT_RC, _pyplot, _save

TERMS, INIT_GRADIENTS = "two_tower_terms.svg", "init_gradients.svg"  # the figures' files (+ .csv)


def curves_file(kind: Kind) -> str:
    """Return the file name of a kind's curves figure."""
    return f"{kind}_curves.svg"


def confusions_file(kind: Kind) -> str:
    """Return the file name of a kind's test-confusions figure."""
    return f"{kind}_confusions.svg"


def report_figures() -> tuple[str, ...]:
    """Return every figure the report shows from figures/, the run figures drawn for it included."""
    return (FIRST_LAYER, EMBEDDINGS, TERMS, INIT_GRADIENTS, *map(curves_file, KINDS),
            *map(confusions_file, KINDS))

# How the report names each objective of the two-tower model (two_tower.loss), and the classifier's.
OBJECTIVE_NAMES = {"hinge_rank": "ranking hinge", "hardest_hinge": "hardest-negative hinge",
                   "triplet": "triplet loss", "cosine_contrastive": "cosine contrastive loss",
                   "align_only": "alignment", "softmax_ce": "softmax cross-entropy",
                   "align": "alignment", "cross_entropy": "cross-entropy"}


def objective_label(kind: Kind, cfg: Config) -> str:
    """Return the name of the objective a run of ``kind`` minimised: ``cross-entropy`` for the classifier,
    the embedding objective for a kind with a word tower, e.g. ``ranking hinge + 0.5 × alignment``."""
    from doodlelab.training.registry import spec

    if not spec(kind).word_vectors:
        return OBJECTIVE_NAMES["cross_entropy"]
    t = cfg.two_tower
    label = OBJECTIVE_NAMES[t.loss]
    if t.align_weight:
        label += f" + {t.align_weight:g} × alignment"
    return label


def _rc():  # type: ignore[no-untyped-def]
    import matplotlib

    return matplotlib.rc_context(REPORT_RC)


def curves(histories: Mapping[str, Sequence[Mapping[str, Any]]], objective: str, path: Path) -> Path:
    """Plot the objective (left) and accuracy (right) per epoch, training and validation, one line style
    per run (``histories``: label -> history rows); write ``path`` (.svg) and its .csv."""
    plt = _pyplot()
    rows = [{"run": label, "epoch": int(h["epoch"]), **{k: float(h[k]) for k in
             ("train_loss", "val_loss", "train_accuracy", "val_accuracy")}}
            for label, history in histories.items() for h in history]
    with _rc():
        fig, axes = plt.subplots(1, 2, figsize=(6.6, 2.4), layout="constrained")
        for (label, _), style in zip(histories.items(), ("-", "--", ":")):
            mine = [r for r in rows if r["run"] == label]
            for ax, metric in zip(axes, ("loss", "accuracy")):
                for split, color in (("train", "tab:blue"), ("val", "tab:orange")):
                    ax.plot([r["epoch"] for r in mine], [r[f"{split}_{metric}"] for r in mine], style,
                            color=color, label=f"{label}, {'training' if split == 'train' else 'validation'}")
        axes[0].set_ylabel(objective)
        axes[1].set_ylabel("accuracy")
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        axes[1].legend(frameon=False, loc="lower right")
        write_csv(path.with_suffix(".csv"), rows)
        return _save(fig, path)


def term_rows(history: Sequence[Mapping[str, Any]], weights: Mapping[str, float]) -> list[dict[str, Any]]:
    """Return per epoch the objective and each weighted term, on the training batches and on validation.

    Training: ``batch_loss`` (the epoch's running mean of the minimised objective) and the
    ``term_<name>`` means times their weights; validation: ``val_loss`` and the
    ``diag_term_<name>`` values times theirs. ``weights`` maps a term name to its weight.
    """
    rows = []
    for h in history:
        row: dict[str, Any] = {"epoch": int(h["epoch"]), "train_objective": float(h["batch_loss"]),
                               "val_objective": float(h["val_loss"])}
        for name, w in weights.items():
            row[f"train_{name}"] = w * float(h[f"term_{name}"])
            row[f"val_{name}"] = w * float(h[f"diag_term_{name}"])
        rows.append(row)
    return rows


DIAGNOSTICS = {"diag_active": "share of active hinge terms",
               "diag_class_cosine": "cosine between two classes"}


def objective_terms(history: Sequence[Mapping[str, Any]], label: str, cfg: Config, path: Path,
                    n_classes: int | None = None) -> Path:
    """Plot a two-tower run's validation diagnostics (the share of hinge terms still active, the mean cosine
    between two class embeddings, with a dotted line at -1/(K-1), the lowest mean cosine ``n_classes`` unit
    vectors can have) and, for an objective of several terms, beside them the objective (named ``label``)
    and its weighted terms on the training batches and on validation; the CSV holds every column.

    An objective of one term is its own curve in the run's curves figure, so it is not drawn again here.
    """
    t = cfg.two_tower
    weights = {t.loss: 1.0, **({"align": float(t.align_weight)} if t.align_weight else {})}
    rows = term_rows(history, weights)
    for row, h in zip(rows, history):
        row.update({k: float(h[k]) for k in DIAGNOSTICS if k in h})
    plt = _pyplot()
    epochs = [r["epoch"] for r in rows]
    with _rc():
        if len(weights) == 1:
            fig, diag = plt.subplots(figsize=(3.6, 2.3), layout="constrained")
            diag.set_title(f"validation diagnostics, {label}")
        else:
            fig, axes = plt.subplots(1, 3, figsize=(6.8, 2.3), layout="constrained")
            _plot_terms(axes[:2], epochs, rows, weights, label)
            diag = axes[2]
            diag.set_title("validation diagnostics")
        _plot_diagnostics(diag, epochs, rows, n_classes)
        write_csv(path.with_suffix(".csv"), rows)
        return _save(fig, path)


def _plot_terms(axes: Sequence[Any], epochs: list[int], rows: list[dict[str, Any]],
                weights: Mapping[str, float], label: str) -> None:
    """Draw the objective and each weighted term on the training batches (left) and on validation (right)."""
    for ax, split, title in zip(axes, ("train", "val"), ("training mini-batches", "validation")):
        ax.plot(epochs, [r[f"{split}_objective"] for r in rows], color="black", lw=2.2, alpha=0.35,
                label="the objective")
        for name, w in weights.items():
            term = OBJECTIVE_NAMES[name] if w == 1 else f"{w:g} × {OBJECTIVE_NAMES[name]}"
            ax.plot(epochs, [r[f"{split}_{name}"] for r in rows], "--", label=term)
        ax.set(title=title, xlabel="epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(label)
    axes[1].sharey(axes[0])
    axes[1].legend(frameon=False, loc="upper right")


def _plot_diagnostics(ax: Any, epochs: list[int], rows: list[dict[str, Any]], n_classes: int | None) -> None:
    """Draw the validation diagnostics on ``ax``, the y range wide enough for every value."""
    low = -0.05
    for key, name in DIAGNOSTICS.items():
        if key in rows[0]:
            ax.plot(epochs, [r[key] for r in rows], label=name)
            low = min(low, min(r[key] for r in rows) - 0.05)
    if n_classes is not None and n_classes > 1 and "diag_class_cosine" in rows[0]:
        spread = -1 / (n_classes - 1)
        ax.axhline(spread, color="grey", ls=":", lw=1, label="most spread possible")
        low = min(low, spread - 0.05)
    ax.set(xlabel="epoch", ylim=(low, 1.05))
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, loc="upper right")


def top_confusions(y: np.ndarray, pred: np.ndarray, count: int) -> list[tuple[int, int, int]]:
    """Return the ``count`` most frequent (true, predicted, images) pairs with true != predicted."""
    k = int(max(y.max(), pred.max())) + 1
    matrix = np.zeros((k, k), int)
    np.add.at(matrix, (y, pred), 1)
    np.fill_diagonal(matrix, 0)
    order = np.argsort(-matrix, axis=None, kind="stable")[:count]
    return [(int(i // k), int(i % k), int(matrix.flat[i])) for i in order if matrix.flat[i] > 0]


def confusions(images: np.ndarray, y: np.ndarray, probs: np.ndarray, classes: Sequence[str], path: Path,
               pairs: int = 3, per_pair: int = 7) -> Path:
    """Show the ``pairs`` most frequent confusions on the test images, ``per_pair`` examples each (the
    most confident mistakes first); write ``path`` and a CSV of every pair's count and shown images."""
    pred = probs.argmax(axis=1)
    found = top_confusions(y, pred, pairs)
    plt = _pyplot()
    rows = []
    if not found:
        with _rc():
            fig, ax = plt.subplots(figsize=(3.3, 0.6))
            ax.axis("off")
            ax.text(0.5, 0.5, "no test image was misclassified", ha="center", va="center")
            write_csv(path.with_suffix(".csv"), rows, ["true", "predicted", "images", "index", "probability"])
            return _save(fig, path)
    with _rc():
        fig, axes = plt.subplots(len(found), per_pair, figsize=(per_pair * 0.75, len(found) * 0.95),
                                 squeeze=False)
        for r, (t, p, n) in enumerate(found):
            idx = np.flatnonzero((y == t) & (pred == p))
            idx = idx[np.argsort(-probs[idx, p], kind="stable")][:per_pair]
            rows += [{"true": classes[t], "predicted": classes[p], "images": n, "index": int(i),
                      "probability": round(float(probs[i, p]), 4)} for i in idx]
            for c, ax in enumerate(axes[r]):
                ax.set_xticks([])
                ax.set_yticks([])
                for side in ax.spines.values():
                    side.set_visible(False)
                if c < idx.size:
                    side_px = int(round(np.sqrt(images.shape[1])))
                    ax.imshow(images[idx[c]].reshape(side_px, side_px), cmap="gray_r", vmin=0, vmax=1)
            axes[r][0].set_ylabel(f"{classes[t]} → {classes[p]}\n({n} images)", rotation=0, ha="right",
                                  va="center")
        write_csv(path.with_suffix(".csv"), rows, ["true", "predicted", "images", "index", "probability"])
        return _save(fig, path)


def init_gradients(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Plot each variant's gradient norm per layer at initialisation (mean over seeds, log scale)."""
    plt = _pyplot()
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    means = []
    for v in variants:
        layers = sorted({int(r["layer"]) for r in rows if r["variant"] == v})
        for layer in layers:
            norms = [float(r["grad_norm"]) for r in rows if r["variant"] == v and int(r["layer"]) == layer]
            means.append({"variant": v, "layer": layer, "grad_norm_mean": float(np.mean(norms)),
                          "seeds": len(norms)})
    with _rc():
        fig, ax = plt.subplots(figsize=(3.3, 2.3))
        for v in variants:
            mine = [m for m in means if m["variant"] == v]
            ax.plot([m["layer"] for m in mine], [m["grad_norm_mean"] for m in mine], "o-", label=v)
        ax.set_yscale("log")
        ax.set_xlabel("layer (1 = next to the pixels)")
        ax.set_ylabel("gradient norm at initialisation")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
        write_csv(path.with_suffix(".csv"), means)
        return _save(fig, path)
