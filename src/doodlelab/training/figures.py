"""Figures of a run, each written as a PNG (or, for the report, SVG) together with the CSV of its numbers.

Tests assert on the CSVs, never on pixels. matplotlib is imported inside the
functions (with the non-interactive Agg backend), so importing this module is cheap.
An ``.svg`` figure keeps its text as text (searchable in the report's PDF) in the
DejaVu Sans that matplotlib ships, which :func:`font_dir` hands to the report's compiler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from doodlelab.files.atomic import write_bytes, write_csv
from doodlelab.geometry import SHAPE

CURVES = ("loss", "accuracy")  # plot_curves draws one figure of each
EXAMPLES_FILES = ("examples.png", "examples.csv")  # what plot_examples writes
FIRST_LAYER, EMBEDDINGS = "first_layer.png", "embeddings.svg"  # plot_first_layer's, plot_embeddings' (+ .csv)


def curve_files(stem: str = "") -> tuple[str, ...]:
    """Return the names of the files :func:`plot_curves` writes with ``stem``, in the order written."""
    return tuple(f"{stem}{metric}{suffix}" for metric in CURVES for suffix in (".png", ".csv"))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` as PNG, or as SVG with its text kept as text when the suffix is .svg."""
    import io

    import matplotlib

    buf = io.BytesIO()
    if Path(path).suffix == ".svg":
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "doodlelab"}):
            fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    else:
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return write_bytes(path, buf.getvalue())


def font_dir() -> Path:
    """Return the folder of the fonts matplotlib ships (DejaVu Sans): the SVG figures' text font."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


# The report's figures print at about 8 cm wide: 7-8 pt text at that size.
REPORT_RC = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
             "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.2}


def plot_study_curves(curves: Sequence[Mapping[str, float]], settings: Sequence[str], path: Path) -> Path:
    """Plot a study's validation accuracy per epoch (mean over seeds), one line per setting, to ``path``."""
    import matplotlib

    plt = _pyplot()
    with matplotlib.rc_context(REPORT_RC):
        fig, ax = plt.subplots(figsize=(3.3, 2.3))
        for name in settings:
            mine = sorted((c for c in curves if c["setting"] == name), key=lambda c: c["epoch"])
            ax.plot([c["epoch"] for c in mine], [c["val_accuracy"] for c in mine], label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation accuracy\n(mean over seeds)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, loc="lower right")
        return _save(fig, path)


def plot_curves(
    runs: Mapping[str, Sequence[Mapping[str, float]]], out_dir: Path, stem: str = ""
) -> list[Path]:
    """Plot loss and accuracy per epoch for one or more labelled histories.

    Writes ``{stem}loss.png``/``.csv`` (train and validation loss) and
    ``{stem}accuracy.png``/``.csv`` (train and validation accuracy). With several runs
    (e.g. numpy and torch) the curves are overlaid and the CSV has a ``run`` column.
    """
    plt = _pyplot()
    out_dir = Path(out_dir)
    written = []
    for metric, ylabel in zip(CURVES, ("cross-entropy", "accuracy")):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        rows = []
        styles = ["-", "--", ":", "-."]
        for i, (label, history) in enumerate(runs.items()):
            epochs = [h["epoch"] for h in history]
            for split, color in (("train", "tab:blue"), ("val", "tab:orange")):
                key = f"{split}_{metric}"
                values = [h[key] for h in history]
                name = f"{label} {split}" if len(runs) > 1 else split
                ax.plot(epochs, values, styles[i % 4], color=color, label=name)
            for h in history:
                rows.append({"run": label, "epoch": h["epoch"],
                             f"train_{metric}": h[f"train_{metric}"],
                             f"val_{metric}": h[f"val_{metric}"]})
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{metric} per epoch")
        ax.grid(alpha=0.3)
        ax.legend()
        written.append(_save(fig, out_dir / f"{stem}{metric}.png"))
        written.append(write_csv(out_dir / f"{stem}{metric}.csv", rows,
                                 ["run", "epoch", f"train_{metric}", f"val_{metric}"]))
    return written


def plot_loss_terms(history: Sequence[Mapping[str, float]], out_dir: Path, prefix: str = "term_",
                    stem: str = "") -> list[Path]:
    """Plot every term of the training objective per epoch, one panel each, plus their CSV.

    ``history`` rows hold the terms as ``term_<name>`` (epoch means over the mini-batches,
    unweighted); writes ``{stem}loss_terms.png``/``.csv``. Nothing is written when the
    objective has a single term.
    """
    return _plot_panels(history, Path(out_dir) / f"{stem}loss_terms", prefix,
                        "terms of the training objective (epoch means, before weighting)")


# What each diagnostic a task reports means, for the panel titles.
DIAGNOSTIC_TITLES = {
    "active": "non-zero terms of the objective\n(fraction, validation)",
    "class_cosine": "mean cosine between distinct\nclass embeddings (1 = collapsed)",
}


def plot_diagnostics(history: Sequence[Mapping[str, float]], out_dir: Path, prefix: str = "diag_",
                     stem: str = "") -> list[Path]:
    """Plot the task's per-epoch diagnostics (``diag_<name>`` columns), one panel each, plus their CSV.

    Writes ``{stem}diagnostics.png``/``.csv``; nothing when the history has fewer than two.
    """
    return _plot_panels(history, Path(out_dir) / f"{stem}diagnostics", prefix,
                        "training diagnostics (measured on the validation split after each epoch)",
                        DIAGNOSTIC_TITLES)


def _plot_panels(history: Sequence[Mapping[str, float]], path: Path, prefix: str, title: str,
                 titles: Mapping[str, str] | None = None) -> list[Path]:
    """Plot the ``prefix`` columns of ``history`` one panel each to ``path``.png, numbers to .csv."""
    names = [k[len(prefix):] for k in (history[0] if history else {}) if k.startswith(prefix)]
    if len(names) < 2:
        return []
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.4), squeeze=False,
                             layout="constrained")  # keeps the suptitle clear of the panel titles
    epochs = [h["epoch"] for h in history]
    for ax, name in zip(axes[0], names):
        ax.plot(epochs, [h[prefix + name] for h in history], color="tab:purple")
        ax.set_title((titles or {}).get(name, name), fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    rows = [{"epoch": h["epoch"], **{n: h[prefix + n] for n in names}} for h in history]
    return [_save(fig, path.with_suffix(".png")),
            write_csv(path.with_suffix(".csv"), rows, ["epoch", *names])]


# Up to this many classes a figure names every class in place (cell counts, legend
# entries); with more (a folder from ``doodlelab fetch``) it would be unreadable, so the
# figure shows the pattern and the CSV beside it holds every number.
MAX_LABELLED_CLASSES = 12


def plot_confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str], out_dir: Path,
                   stem: str = "") -> list[Path]:
    """Plot the confusion matrix (rows true, columns predicted), with counts in the cells for few classes."""
    plt = _pyplot()
    m = np.asarray(matrix)
    k = len(class_names)
    few = k <= MAX_LABELLED_CLASSES
    side = 4.6 if few else min(4.6 + 0.12 * k, 24.0)
    fig, ax = plt.subplots(figsize=(side + 0.6, side))
    im = ax.imshow(m, cmap="Blues")
    size = 10 if few else max(4, 9 - k // 40)
    ax.set_xticks(range(k), class_names, rotation=30 if few else 90, ha="right" if few else "center",
                  fontsize=size)
    ax.set_yticks(range(k), class_names, fontsize=size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if few:
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, str(m[i, j]), ha="center", va="center",
                        color="white" if m[i, j] > m.max() / 2 else "black")
    fig.colorbar(im, ax=ax)
    ax.set_title("confusion matrix (test)")
    rows = [{"true": class_names[i], **{class_names[j]: int(m[i, j]) for j in range(m.shape[1])}}
            for i in range(m.shape[0])]
    return [_save(fig, Path(out_dir) / f"{stem}confusion.png"),
            write_csv(Path(out_dir) / f"{stem}confusion.csv", rows, ["true", *class_names])]


def plot_roc_pr(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], out_dir: Path,
                stem: str = "") -> list[Path]:
    """Plot one-vs-rest ROC and precision-recall curves per class (sklearn curves)."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    plt = _pyplot()
    out_dir = Path(out_dir)
    written = []
    fig_roc, ax_roc = plt.subplots(figsize=(5.6, 4.6))
    fig_pr, ax_pr = plt.subplots(figsize=(5.6, 4.6))
    roc_rows, pr_rows = [], []
    few = len(class_names) <= MAX_LABELLED_CLASSES
    for c, name in enumerate(class_names):
        positive = (y_true == c).astype(int)
        if positive.min() == positive.max():
            continue  # a class absent (or alone) has no curve
        fpr, tpr, _ = roc_curve(positive, probs[:, c])
        prec, rec, _ = precision_recall_curve(positive, probs[:, c])
        style = {} if few else {"lw": 0.7, "alpha": 0.5}
        ax_roc.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})", **style)
        ax_pr.plot(rec, prec, label=name, **style)
        roc_rows += [{"class": name, "fpr": float(a), "tpr": float(b)} for a, b in zip(fpr, tpr)]
        pr_rows += [{"class": name, "recall": float(a), "precision": float(b)}
                    for a, b in zip(rec, prec)]
    ax_roc.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall (test)")
    for ax in (ax_roc, ax_pr):
        ax.grid(alpha=0.3)
        if few:
            ax.legend(fontsize=8)
        else:  # one curve per class, no legend: the CSV names them
            ax.set_title(f"{ax.get_title()}, {len(class_names)} classes (names in the CSV)", fontsize=10)
    written.append(_save(fig_roc, out_dir / f"{stem}roc.png"))
    written.append(write_csv(out_dir / f"{stem}roc.csv", roc_rows, ["class", "fpr", "tpr"]))
    written.append(_save(fig_pr, out_dir / f"{stem}pr.png"))
    written.append(write_csv(out_dir / f"{stem}pr.csv", pr_rows, ["class", "recall", "precision"]))
    return written


def plot_mistakes(x: np.ndarray, y_true: np.ndarray, probs: np.ndarray,
                  class_names: Sequence[str], out_dir: Path, stem: str = "",
                  limit: int = 25) -> list[Path]:
    """Show the test images the model gets wrong most confidently, (N, 784) images.

    The CSV lists every mistake (test index, true and predicted class, the predicted
    class's probability), most confident first; the PNG shows the first ``limit``.
    """
    plt = _pyplot()
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")]
    rows = [{"index": int(i), "true": class_names[y_true[i]], "predicted": class_names[pred[i]],
             "probability": round(float(probs[i, pred[i]]), 6)} for i in wrong]
    shown = wrong[:limit]
    cols = 5
    nrows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(cols * 1.6, nrows * 1.9), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), shown):
        ax.imshow(x[i].reshape(SHAPE), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"{class_names[y_true[i]]}\n-> {class_names[pred[i]]} {probs[i, pred[i]]:.2f}",
                     fontsize=7)
    fig.suptitle(f"most confident mistakes ({len(wrong)} of {len(y_true)} test images wrong)",
                 fontsize=9)
    return [_save(fig, Path(out_dir) / f"{stem}mistakes.png"),
            write_csv(Path(out_dir) / f"{stem}mistakes.csv", rows,
                      ["index", "true", "predicted", "probability"])]


def _bare(ax) -> None:
    """Hide an image panel's ticks and frame."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def plot_examples(x: np.ndarray, y: np.ndarray, index: np.ndarray, class_names: Sequence[str],
                  out_dir: Path, per_class: int = 8) -> list[Path]:
    """Draw the first ``per_class`` images (N, 784) of every class; write examples.png and .csv."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(class_names), per_class, squeeze=False,
                             figsize=(per_class * 0.9, len(class_names) * 0.95))
    rows = []
    for c, name in enumerate(class_names):
        members = np.flatnonzero(y == c)[:per_class]
        for j, ax in enumerate(axes[c]):
            _bare(ax)
            if j < members.size:
                ax.imshow(x[members[j]].reshape(SHAPE), cmap="gray_r", vmin=0, vmax=1)
                rows.append({"class": name, "train_index": int(index[members[j]])})
        axes[c][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("training images, the first of each class", fontsize=9)
    png, csv = EXAMPLES_FILES
    return [_save(fig, Path(out_dir) / png), write_csv(Path(out_dir) / csv, rows, ["class", "train_index"])]


def plot_first_layer(weight: np.ndarray, out_dir: Path, count: int = 32) -> list[Path]:
    """Draw the input weights (784, H) of the ``count`` first-layer units with the largest norm as
    28x28 images (blue positive, red negative); write first_layer.png and .csv (unit, norm)."""
    plt = _pyplot()
    norms = np.linalg.norm(weight, axis=0)
    units = np.argsort(-norms, kind="stable")[:count]
    cols = 8
    fig, axes = plt.subplots(-(-len(units) // cols), cols, figsize=(cols * 1.1, -(-len(units) // cols) * 1.1),
                             squeeze=False)
    for ax in axes.ravel():
        _bare(ax)
    for ax, unit in zip(axes.ravel(), units):
        w = weight[:, unit].reshape(SHAPE)
        bound = float(np.abs(w).max()) or 1.0
        ax.imshow(w, cmap="RdBu", vmin=-bound, vmax=bound)
        ax.set_title(f"unit {unit}", fontsize=6)
    fig.suptitle(f"first hidden layer: input weights of the {len(units)} units with the largest norm "
                 f"(of {weight.shape[1]})", fontsize=8)
    rows = [{"unit": int(u), "norm": float(norms[u])} for u in units]
    path = Path(out_dir) / FIRST_LAYER
    return [_save(fig, path), write_csv(path.with_suffix(".csv"), rows, ["unit", "norm"])]


def _label_offset(points: np.ndarray, i: int, distance: float = 9.0) -> tuple[float, float]:
    """Return an offset in points for the label of ``points[i]`` pointing away from its nearest other point
    (straight up when it has none or they coincide)."""
    others = np.delete(points, i, axis=0)
    if len(others) == 0:
        return 0.0, distance
    away = points[i] - others[np.argmin(np.linalg.norm(others - points[i], axis=1))]
    norm = float(np.linalg.norm(away))
    if norm == 0:
        return 0.0, distance
    return float(distance * away[0] / norm), float(distance * away[1] / norm)


def plot_embeddings(image: np.ndarray, y: np.ndarray, words: np.ndarray, class_names: Sequence[str],
                    out_dir: Path) -> list[Path]:
    """Project test image embeddings (N, E) and class-word embeddings (K, E) on the images' first two
    principal components (sklearn PCA); write embeddings.svg and .csv (kind, class, pc1, pc2).

    Each star's name is set off on the side away from its nearest other star, so two close stars keep
    both names readable."""
    from sklearn.decomposition import PCA

    plt = _pyplot()
    pca = PCA(n_components=2).fit(image)
    xy, wxy = pca.transform(image), pca.transform(words)
    fig, ax = plt.subplots(figsize=(6.2, 5.0))
    colors = plt.get_cmap("tab10")
    for c, name in enumerate(class_names):
        mask = y == c
        ax.scatter(xy[mask, 0], xy[mask, 1], s=6, alpha=0.35, color=colors(c % 10), label=name)
        ax.scatter(wxy[c, 0], wxy[c, 1], s=220, marker="*", color=colors(c % 10), edgecolor="black", zorder=3)
    for c, name in enumerate(class_names):
        dx, dy = _label_offset(wxy, c)
        ax.annotate(name, wxy[c], xytext=(dx, dy), textcoords="offset points", fontsize=9, weight="bold",
                    ha="left" if dx > 4 else "right" if dx < -4 else "center",
                    va="bottom" if dy > 4 else "top" if dy < -4 else "center", zorder=4,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75})
    ratio = pca.explained_variance_ratio_
    ax.set(xlabel=f"PC 1 ({ratio[0]:.0%} of variance)", ylabel=f"PC 2 ({ratio[1]:.0%})")
    ax.legend(fontsize=7, markerscale=2, loc="best")
    ax.grid(alpha=0.3)
    rows = [{"kind": "image", "class": class_names[int(c)], "pc1": float(a), "pc2": float(b)}
            for c, (a, b) in zip(y, xy)]
    rows += [{"kind": "word", "class": name, "pc1": float(a), "pc2": float(b)}
             for name, (a, b) in zip(class_names, wxy)]
    path = Path(out_dir) / EMBEDDINGS
    return [_save(fig, path), write_csv(path.with_suffix(".csv"), rows, ["kind", "class", "pc1", "pc2"])]


def plot_study(summary: Sequence[Mapping[str, float]], out_dir: Path) -> list[Path]:
    """Draw a study's validation accuracy per setting, mean and spread (std over seeds), in grid order;
    write study.png (the numbers are the study's summary.csv)."""
    plt = _pyplot()
    rows = sorted(summary, key=lambda r: int(r["point"]))
    fig, ax = plt.subplots(figsize=(6.4, 0.42 * len(rows) + 1.2))
    means = [float(r["val_accuracy_mean"]) for r in rows]
    ax.errorbar(means, range(len(rows)), xerr=[float(r["val_accuracy_std"]) for r in rows], fmt="o",
                capsize=4, color="tab:blue")
    ax.set_yticks(range(len(rows)), [str(r["label"]) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"validation accuracy (mean and std over {int(rows[0]['seeds'])} seeds)")
    ax.grid(alpha=0.3, axis="x")
    return [_save(fig, Path(out_dir) / "study.png")]


def plot_history_panels(histories: Sequence[Mapping[str, float]], out_dir: Path,
                        stem: str = "") -> list[Path]:
    """Plot every per-epoch column beyond loss/accuracy (objective terms ``term_*``, diagnostics) of a
    study's runs, one panel per column and one line per ``label`` (mean over seeds);
    write {stem}terms.png/.csv."""
    from doodlelab.training.fit import HISTORY_COLUMNS

    skip = {*HISTORY_COLUMNS, "point", "label", "seed"}
    columns = [k for k in dict.fromkeys(k for h in histories for k in h) if k not in skip]
    if not columns:
        return []
    plt = _pyplot()
    labels = list(dict.fromkeys(str(h["label"]) for h in histories))
    fig, axes = plt.subplots(1, len(columns), figsize=(3.3 * len(columns), 3.3), squeeze=False,
                             layout="constrained")
    rows = []
    for label in labels:
        mine = [h for h in histories if str(h["label"]) == label]
        epochs = sorted({int(h["epoch"]) for h in mine})
        for epoch in epochs:
            at = [h for h in mine if int(h["epoch"]) == epoch]
            rows.append({"label": label, "epoch": epoch, **{c: float(np.mean(
                [float(h[c]) for h in at if h.get(c) not in (None, "")] or [np.nan])) for c in columns}})
        for ax, column in zip(axes[0], columns):
            ax.plot(epochs, [r[column] for r in rows if r["label"] == label], label=label)
    for ax, column in zip(axes[0], columns):
        ax.set(title=column, xlabel="epoch")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6)
    fig.suptitle("per-epoch terms and diagnostics of the training objective (mean over seeds)", fontsize=9)
    return [_save(fig, Path(out_dir) / f"{stem}terms.png"),
            write_csv(Path(out_dir) / f"{stem}terms.csv", rows, ["label", "epoch", *columns])]
