"""Build ``report/report.html`` and ``report/report.pdf`` from a results folder of ``doodlelab run``.

Every number in the report is read from a file the pipeline wrote (run folders,
``gradcheck.json``, ``compare/``, ``sweep/``, ``validation.json``, ``data/``, ``evidence/``,
``pipeline.json``) or computed here from those files (hashes, maxima, differences);
nothing is retrained and no result is typed in. Each table and figure names the file it
comes from. The few figures drawn here (the objective's terms one panel each, the sweep
curves) are drawn from those files' numbers too.

A results folder missing a required piece (a run, the gradient check, a comparison, the
data summary, ``pipeline.json``) is a one-line :class:`~doodlelab.errors.UserError`; the
sweeps, ``validation.json`` and the copied evidence are optional, and their sections say
when they are absent.
"""

from __future__ import annotations

import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from doodlelab.errors import UserError
from doodlelab.report.document import (
    Bullets,
    Code,
    Document,
    Figure,
    Figures,
    Heading,
    Para,
    Table,
    markdown_blocks,
    render_html,
    render_pdf,
)
from doodlelab.runfolder import CLASS_VECTORS, METRICS, SPLIT, WEIGHTS, RunFolder

RUN_NAMES = ("classifier-numpy", "classifier-torch", "two_tower-numpy", "two_tower-torch")
SCALARS = (
    ("accuracy", "accuracy"),
    ("precision_macro", "precision (macro)"),
    ("recall_macro", "recall (macro)"),
    ("f1_macro", "F1 (macro)"),
    ("roc_auc_macro", "ROC-AUC (macro, one-vs-rest)"),
    ("pr_auc_macro", "PR-AUC (macro average precision)"),
)
TERM_PREFIX = "term_"
DTYPES = ("float64", "float32")


# -- number formats (the tests format with these too) -------------------------------------------


def fmt_metric(value: Any) -> str:
    """A test or validation metric: 4 decimals."""
    return "n/a" if value is None else f"{float(value):.4f}"


def fmt_diff(value: Any) -> str:
    """A difference between two metrics, signed, 4 decimals."""
    return "n/a" if value is None else f"{float(value):+.4f}"


def fmt_sci(value: Any) -> str:
    """A gradient or parameter difference: 4 significant digits, scientific."""
    return "n/a" if value is None else f"{float(value):.3e}"


def fmt_cos(value: Any) -> str:
    """A cosine close to 1: 12 decimals."""
    return "n/a" if value is None else f"{float(value):.12f}"


def fmt_num(value: Any) -> str:
    """Any other value, as short as exact: ``0.05``, ``0.0001``, ``100``, ``[512, 256]``, ``yes``."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(fmt_num(v) for v in value) + "]"
    return str(value)


def fmt_seconds(value: Any) -> str:
    """Seconds: 1 decimal from 10 s up, else 2."""
    if value is None:
        return "n/a"
    return f"{float(value):.1f} s" if float(value) >= 10 else f"{float(value):.2f} s"


def _sec3(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def _ratio(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.2f}"


# -- reading the results folder -----------------------------------------------------------------


class Results:
    """The files of one results folder, read once; a missing required file is a UserError."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root} is not a results folder; make one with "
                            f"doodlelab run --out {self.root}")
        self.manifest = self.json("pipeline.json")
        self.data = self.json("data/data.json")
        self.runs = {name: self.read_run(name) for name in RUN_NAMES}
        self.gradcheck = self.json("gradcheck.json")
        self.compare = {task: self.json(f"compare/{task}/metrics.json")
                        for task in ("classifier", "two_tower")}
        self.validation = self.json("validation.json", required=False) or {}
        self.sweeps = self.read_sweeps()
        self.evidence = self.json("evidence/sources.json", required=False) or {}

    def path(self, rel: str, required: bool = True) -> Path | None:
        """Return ``root/rel`` if it is a file; else None, or a UserError if ``required``."""
        path = self.root / rel
        if not path.is_file():
            if required:
                raise UserError(f"{path} is missing: this results folder is incomplete; run "
                                f"doodlelab run --out {self.root} to finish it")
            return None
        return path

    def json(self, rel: str, required: bool = True) -> Any:
        """Return the parsed JSON of ``root/rel`` (None if optional and absent)."""
        path = self.path(rel, required)
        if path is None:
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path} is not readable JSON ({exc}); redo it with doodlelab run "
                            "--overwrite") from None

    def bytes(self, rel: str, required: bool = True) -> bytes | None:
        """Return the bytes of ``root/rel`` (None if optional and absent)."""
        path = self.path(rel, required)
        return None if path is None else path.read_bytes()

    def csv(self, rel: str, required: bool = True) -> list[dict[str, Any]] | None:
        """Return the rows of the CSV ``root/rel`` with numbers parsed (None if optional and absent)."""
        from doodlelab.fileio import read_csv

        path = self.path(rel, required)
        if path is None:
            return None
        try:
            return [{k: _number(v) for k, v in row.items()} for row in read_csv(path)]
        except (OSError, ValueError) as exc:
            raise UserError(f"{path} is not a readable CSV ({exc})") from None

    def read_run(self, name: str) -> dict[str, Any]:
        """Return config, env, metrics, history, weight shapes and checksums of ``runs/<name>``."""
        rel = f"runs/{name}"
        folder = RunFolder(self.root / rel)
        if not folder.finished:
            raise UserError(f"{folder.path} is missing or unfinished; run "
                            f"doodlelab run --out {self.root} to finish it")
        run: dict[str, Any] = {"name": name, "rel": rel, "config": folder.config, "env": folder.env,
                               "metrics": folder.metrics,
                               "history": folder.history,
                               "weights": {k: tuple(int(s) for s in w.shape)
                                           for k, w in folder.weights.items()},
                               "split": folder.split}
        if run["config"].get("task") == "two_tower":
            names, vectors = folder.class_vectors
            run["class_vectors"] = {"names": list(names), "shape": tuple(int(s) for s in vectors.shape)}
            run["class_vectors_sha256"] = folder.sha256(CLASS_VECTORS)[CLASS_VECTORS]
        run["sha256"] = folder.sha256()
        run["timings"] = run["env"].get("timings", {})
        return run

    def read_sweeps(self) -> list[dict[str, Any]]:
        """Return the sweeps ``pipeline.json`` lists whose ``summary.csv`` exists."""
        out = []
        for spec in self.manifest.get("sweeps", []):
            rel = f"sweep/{spec['name']}"
            if self.path(f"{rel}/summary.csv", required=False) is None:
                continue
            out.append({**spec, "rel": rel, "rows": self.csv(f"{rel}/sweep.csv"),
                        "histories": self.csv(f"{rel}/histories.csv")})
        return out

    def figure(self, rel: str) -> bytes | None:
        """Return a PNG's bytes, or None if the figure was not drawn."""
        return self.bytes(rel, required=False)


def _number(text: str | None) -> Any:
    """A CSV cell as int or float where it is one."""
    if text is None:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# -- small helpers ------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _layers(weights: dict[str, tuple[int, ...]], prefix: str = "") -> list[int]:
    """Widths of a Linear stack, from its weight shapes (in, out) in layer order."""
    mats = [(k, s) for k, s in weights.items()
            if k.startswith(prefix) and k.endswith("weight") and len(s) == 2]
    mats.sort(key=lambda kv: int(kv[0][len(prefix):].split(".")[0]))
    return [mats[0][1][0], *(s[1] for _, s in mats)] if mats else []


def _arch(weights: dict[str, tuple[int, ...]], prefix: str = "") -> str:
    return " - ".join(map(str, _layers(weights, prefix)))


def _n_params(weights: dict[str, tuple[int, ...]], prefix: str = "") -> int:
    return sum(math.prod(s) for k, s in weights.items() if k.startswith(prefix))


def _run_figs(r: Results, run: dict[str, Any], names: list[str], caption: str = "") -> Figures | None:
    items = [Figure(png, f"{run['rel']}/figures/{n}.png") for n in names
             if (png := r.figure(f"{run['rel']}/figures/{n}.png")) is not None]
    return Figures(items, caption) if items else None


def _last(history: list[dict[str, Any]]) -> dict[str, Any]:
    return history[-1]


def _best(history: list[dict[str, Any]]) -> dict[str, Any]:
    return max(history, key=lambda h: (h["val_accuracy"], -h["epoch"]))


def _terms(history: list[dict[str, Any]]) -> list[str]:
    return [k for k in history[0] if k.startswith(TERM_PREFIX)]


def _sections(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if isinstance(v, dict)}


# -- checks the report makes itself --------------------------------------------------------------


def cross_checks(r: Results) -> dict[str, Any]:
    """Split identity, checksum agreement, twin settings and the gradcheck summary, from the files."""
    import numpy as np

    expected = None
    if (path := r.path("data/split.npz", required=False)) is not None:
        from doodlelab.data.split import load_split_file

        expected = load_split_file(path)

    def same(a: tuple[Any, Any], b: tuple[Any, Any]) -> bool:
        return bool(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]))

    hashes = {name: run["sha256"][SPLIT] for name, run in r.runs.items()}
    first = r.runs[RUN_NAMES[0]]["split"]
    same_indices = all(same(run["split"], first) for run in r.runs.values())
    rows = [[name, hashes[name][:16], f"{run['split'][0].size} / {run['split'][1].size}",
             "n/a" if expected is None else "yes" if same(run["split"], expected) else "NO"]
            for name, run in r.runs.items()]
    if len(set(hashes.values())) == 1 and same_indices:
        split = (f"All four runs share one train/validation split: their split.npz files are identical "
                 f"(SHA-256 {hashes[RUN_NAMES[0]]}; {first[0].size} training and {first[1].size} "
                 "validation images).")
    elif same_indices:
        split = "All four runs hold the same split indices (their split.npz files differ in bytes only)."
    else:
        split = "WARNING: the four runs do NOT share one train/validation split."
    g = r.gradcheck
    models = {k: v for k, v in g.items() if isinstance(v, dict) and "optimizer" in v}
    worst = {}
    for dtype in DTYPES:
        values = [row["max_rel_diff"] for model in models.values() for row in model.get(dtype, [])]
        worst[dtype] = max(values) if values else None
    verdict = "passed." if g.get("passed") else "FAILED: " + "; ".join(g.get("failures", []))
    gradcheck = (f"First-iteration gradients, numpy backprop vs torch autograd (gradcheck.json): largest "
                 f"relative difference {fmt_sci(worst['float64'])} in float64 and "
                 f"{fmt_sci(worst['float32'])} in float32; {verdict}")
    twins = {}
    for task in ("classifier", "two_tower"):
        a, b = r.runs[f"{task}-numpy"], r.runs[f"{task}-torch"]
        twins[task] = _sections(a["config"]) == _sections(b["config"]) and a["weights"] == b["weights"]
    verdicts = ", ".join(f"{t} {'yes' if s else 'NO'}" for t, s in twins.items())
    twin = ("The numpy and torch runs of each model have identical settings (config.json) and parameter "
            f"shapes (weights.npz): {verdicts}.")
    return {
        "split_sentence": split, "split_rows": rows,
        "checksums_agree": all(run["env"].get("data_checksums") == r.data["checksums"]
                               for run in r.runs.values()),
        "gradcheck_sentence": gradcheck, "twin_sentence": twin,
    }


# -- sections -----------------------------------------------------------------------------------


def summary_section(doc: Document, r: Results, checks: dict[str, Any]) -> None:
    """Section 1: the four runs' headline numbers and the cross-checks in one place."""
    doc.add(Heading("Results at a glance", 1, "summary"))
    rows = []
    for name, run in r.runs.items():
        m = run["metrics"]
        rows.append([name, *(fmt_metric(m.get(k)) for k in ("accuracy", "f1_macro", "roc_auc_macro",
                                                           "pr_auc_macro")),
                     fmt_metric(_last(run["history"])["val_accuracy"]),
                     fmt_seconds(run["timings"].get("train_seconds"))])
    n_test = r.runs[RUN_NAMES[0]]["metrics"].get("n_samples")
    doc.add(Table(["run", "test accuracy", "macro F1", "ROC-AUC", "PR-AUC", "val. accuracy (last epoch)",
                   "training time"], rows,
                  f"Test metrics from runs/<run>/metrics.json ({n_test} test images); validation accuracy "
                  "from the last row of history.csv; training time from env.json."))
    doc.add(Bullets([checks["split_sentence"], checks["gradcheck_sentence"], checks["twin_sentence"]]))
    doc.add(Para("Where each question is answered: the numpy classifier (architecture, optimizer, test "
                 "metrics, curves) in section 3; how its hyperparameters were chosen and what else was tried "
                 "in section 4; the PyTorch twin and the first-iteration gradient comparison in section 5; "
                 "the word-embedding classifier in section 6; speed and reproducibility in sections 7 and 8.",
                 "note"))
    if r.manifest.get("quick"):
        epochs = r.runs[RUN_NAMES[0]]["config"]["train"]["epochs"]
        doc.add(Para(f"These results were made with doodlelab run --quick (tiny models, {epochs} epochs): "
                     "a smoke test, not the measured results.", "warn"))


def data_section(doc: Document, r: Results, checks: dict[str, Any]) -> None:
    """Section 2: counts per class, the shared split and its hash, data checksums, examples."""
    d = r.data
    doc.add(Heading("Data and the train/validation split", 1, "data"))
    classes = d["classes"]
    doc.add(Para(f"Data folder: {d['data_dir']}. Classes (label name): "
                 + ", ".join(f"{i} {c}" for i, c in enumerate(classes))
                 + f". Images are {d['image_shape'][0]}x{d['image_shape'][1]} grayscale. The validation "
                 f"set is a stratified {fmt_num(d['val_fraction'])} of the training file drawn with seed "
                 f"{d['seed']}; it chooses settings, and the test file only scores the final models."))
    counts = d["counts"]
    keys = [("train_file", "training file"), ("train", "train part"), ("validation", "validation"),
            ("test", "test")]
    rows = [[str(i), c, *(str(counts[k][c]) for k, _ in keys)] for i, c in enumerate(classes)]
    rows.append(["", "total", *(str(sum(counts[k].values())) for k, _ in keys)])
    doc.add(Table(["label", "class", *(label for _, label in keys)], rows,
                  "Counts per class from data/data.json (written by the pipeline from the course files)."))
    doc.add(Para(checks["split_sentence"]))
    doc.add(Table(["run", "split.npz SHA-256 (first 16)", "train / validation", "= data/split.npz"],
                  checks["split_rows"],
                  "SHA-256 computed by the report from each run's split.npz; data/split.npz is the split "
                  "the pipeline expects for this seed and data."))
    agree = "yes" if checks["checksums_agree"] else "NO"
    doc.add(Table(["file", "SHA-256"], [[k, v] for k, v in sorted(d["checksums"].items())],
                  f"Checksums of the course files (data/data.json); every run's env.json records the same: "
                  f"{agree}."))
    if png := r.figure("data/examples.png"):
        doc.add(Figures([Figure(png, "data/examples.png (their indices: data/examples.csv)")]))


def _hyper_rows(cfg: dict[str, Any]) -> list[list[str]]:
    o, t, a, m = cfg["optim"], cfg["train"], cfg["augment"], cfg["model"]
    lr = f"{fmt_num(o['lr'])}, schedule {o['schedule']}"
    if o["schedule"] == "cosine":
        lr += f" to {fmt_num(o.get('min_lr'))} over the run, advanced every step"
    if o.get("warmup_epochs"):
        lr += f", warm-up {o['warmup_epochs']} epochs"
    augment = "none"
    if a.get("enabled"):
        augment = f"random shifts up to ±{fmt_num(a['shift'])} px" + (
            " (whole pixels)" if a.get("integer_shift") else "")
        for key, text in (("rotate", "rotation ±{}°"), ("scale", "zoom ±{}"), ("shear", "shear ±{}°")):
            if a.get(key):
                augment += ", " + text.format(fmt_num(a[key]))
        if a.get("flip"):
            augment += ", horizontal flips"
    if t.get("patience"):
        stopping = f"patience {t['patience']} on {t.get('monitor')}"
    else:
        stopping = "none"
    stopping += "; weights of the best epoch restored" if t.get("restore_best") else "; final weights kept"
    loss = "softmax + categorical cross-entropy (fused log-sum-exp)"
    if t.get("label_smoothing"):
        loss += f", label smoothing {fmt_num(t['label_smoothing'])}"
    return [
        ["optimizer", f"SGD, momentum {fmt_num(o['momentum'])}{', Nesterov' if o.get('nesterov') else ''}"],
        ["learning rate", lr],
        ["weight decay / L2 penalty", f"{fmt_num(o['weight_decay'])} / {fmt_num(o['l2'])}"],
        ["epochs, batch size", f"{t['epochs']}, {t['batch_size']}"],
        ["loss", loss],
        ["hidden layers, activation", f"{fmt_num(m['hidden'])}, {m['activation']}"],
        ["dropout (hidden / input)", f"{fmt_num(m['dropout'])} / {fmt_num(m['input_dropout'])}"],
        ["initialisation", m["init"]],
        ["augmentation (training batches)", augment],
        ["early stopping", stopping],
        ["prediction", "softmax averaged over the image and its four 1-pixel shifts"
         if cfg["eval"].get("tta") else "softmax of the image"],
        ["seed", str(t["seed"])],
    ]


def _metrics_table(m: dict[str, Any], source: str) -> Table:
    plain = m.get("without_tta") or {}
    header = ["metric", "test"] + (["test, without the shifts"] if plain else [])
    rows = [[label, fmt_metric(m.get(k)), *([fmt_metric(plain.get(k))] if plain else [])]
            for k, label in SCALARS]
    return Table(header, rows, f"From {source}, computed with scikit-learn; the prediction is the argmax.")


def _per_class_table(m: dict[str, Any], source: str) -> Table:
    per_class = m["per_class"]
    named = m.get("class_names", [])
    order = [c for c in named if c in per_class] + sorted(c for c in per_class if c not in named)
    keys = ("precision", "recall", "f1", "roc_auc", "pr_auc")
    rows = [[name, *(fmt_metric(per_class[name].get(k)) for k in keys), str(per_class[name].get("support"))]
            for name in order]
    return Table(["class", "precision", "recall", "F1", "ROC-AUC", "PR-AUC", "support"], rows,
                 f"Per class (one-vs-rest), from {source}.")


def _training_rows(run: dict[str, Any]) -> list[list[str]]:
    h, env = run["history"], run["env"]
    last, best = _last(h), _best(h)
    early = " (stopped early)" if env.get("stopped_early") else ""
    return [
        ["epochs run", f"{env.get('epochs_run', len(h))}{early}"],
        ["last epoch: train loss / accuracy",
         f"{fmt_metric(last['train_loss'])} / {fmt_metric(last['train_accuracy'])}"],
        ["last epoch: validation loss / accuracy",
         f"{fmt_metric(last['val_loss'])} / {fmt_metric(last['val_accuracy'])}"],
        ["best validation accuracy (epoch)", f"{fmt_metric(best['val_accuracy'])} ({int(best['epoch'])})"],
        ["weights kept from epoch", str(env.get("weights_epoch"))],
        ["training time", fmt_seconds(run["timings"].get("train_seconds"))],
    ]


def classifier_section(doc: Document, r: Results) -> None:
    """Section 3: the numpy classifier: architecture, settings, test metrics, curves."""
    run = r.runs["classifier-numpy"]
    m = run["metrics"]
    doc.add(Heading("The classifier from scratch (numpy)", 1, "numpy"))
    doc.add(Para("A multi-layer perceptron in numpy only (src/doodlelab/nn): Linear layers with hand-written "
                 "backward passes, the activation, dropout, a fused softmax + categorical cross-entropy, and "
                 "SGD with momentum, which moves the weights only after every gradient of the step is "
                 "computed. A seeded loader feeds shuffled, augmented mini-batches (src/doodlelab/data). "
                 f"Architecture {_arch(run['weights'])} ({_n_params(run['weights']):,} parameters, read "
                 f"from {run['rel']}/weights.npz); settings from {run['rel']}/config.json:"))
    doc.add(Table(["setting", "value"], _hyper_rows(run["config"])))
    doc.add(Table(["parameter", "shape", "entries"],
                  [[k, " x ".join(map(str, s)), str(math.prod(s))] for k, s in run["weights"].items()],
                  f"{run['rel']}/weights.npz (Linear weights stored (in, out))."))
    doc.add(Heading("Test metrics", 2))
    doc.add(_metrics_table(m, f"{run['rel']}/metrics.json"))
    doc.add(_per_class_table(m, f"{run['rel']}/metrics.json"))
    doc.add(Heading("Training curves", 2))
    doc.add(Table(["", "value"], _training_rows(run),
                  f"From {run['rel']}/history.csv and env.json. Train loss and accuracy are measured after "
                  "each epoch on the clean (not augmented) training images, like validation."))
    for names in (["loss", "accuracy"], ["roc", "pr"], ["confusion", "mistakes"]):
        if block := _run_figs(r, run, names):
            doc.add(block)


def _sweep_plot(r: Results) -> bytes | None:
    """Validation accuracy per epoch of every sweep point and of the default run, a panel per sweep."""
    if not r.sweeps:
        return None
    plt = _pyplot()
    cols = min(2, len(r.sweeps))
    nrows = -(-len(r.sweeps) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
    for ax in axes.ravel()[len(r.sweeps):]:
        ax.set_visible(False)
    for ax, sweep in zip(axes.ravel(), r.sweeps):
        base = r.runs[f"{sweep['model']}-numpy"]["history"]
        ax.plot([h["epoch"] for h in base], [h["val_accuracy"] for h in base], color="black", lw=1.3,
                label="default")
        for label in dict.fromkeys(h["label"] for h in sweep["histories"]):
            rows = [h for h in sweep["histories"] if h["label"] == label]
            ax.plot([h["epoch"] for h in rows], [h["val_accuracy"] for h in rows], lw=0.9,
                    label=str(label).split(".", 1)[-1])
        ax.set_title(f"{sweep['question']} ({sweep['model']})", fontsize=8)
        ax.set_xlabel("epoch", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
        ax.set_ylabel("validation accuracy", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _sweep_blocks(doc: Document, r: Results, sweep: dict[str, Any]) -> None:
    run = r.runs[f"{sweep['model']}-numpy"]
    h = run["history"]
    best = _best(h)
    val = r.validation.get(run["name"], {})
    default = {"label": f"default ({run['rel']})", "val_accuracy": _last(h)["val_accuracy"],
               "val_accuracy_tta": val.get("val_accuracy_tta"), "best_val_accuracy": best["val_accuracy"],
               "best_epoch": int(best["epoch"]), "final_train_accuracy": _last(h)["train_accuracy"],
               "seconds": run["timings"].get("train_seconds")}
    points = [default, *sweep["rows"]]
    rows = [[str(p["label"]), fmt_metric(p["val_accuracy"]), fmt_metric(p["val_accuracy_tta"]),
             f"{fmt_metric(p['best_val_accuracy'])} ({p['best_epoch']})",
             fmt_metric(p["final_train_accuracy"]), fmt_seconds(p["seconds"])] for p in points]
    grid = ", ".join(f"{k} = {fmt_num(v)}" for k, v in sweep["grid"].items())
    seeds = ", ".join(str(s) for s in sweep.get("seeds", []))
    doc.add(Heading(f"{sweep['question']} ({sweep['model']})", 3))
    doc.add(Table(["setting", "val. accuracy", "with shifts", "best epoch's (epoch)", "train accuracy",
                   "time"], rows,
                  f"{sweep['rel']}/sweep.csv: grid {grid}, seed {seeds}, everything else as the default. The "
                  "default row is the run itself (same seed and split; 'with shifts' from "
                  "validation.json). 'best epoch's' is the maximum over epochs: optimistic, shown for "
                  "contrast with the weights kept (the last epoch's)."))
    top = max(points, key=lambda p: p["val_accuracy"])
    n_val = int(run["split"][1].size)
    p = default["val_accuracy"]
    se = math.sqrt(max(p * (1 - p), 1e-12) / n_val) if n_val else float("nan")
    gap = top["val_accuracy"] - p
    if top is default:
        text = f"The default has the highest validation accuracy here ({fmt_metric(p)})."
    else:
        text = (f"Highest validation accuracy: {top['label']} ({fmt_metric(top['val_accuracy'])}), "
                f"{fmt_diff(gap)} over the default ({fmt_metric(p)}), i.e. {gap / se:.1f} standard errors "
                "of one run on this validation set.")
    doc.add(Para(text))


def hyper_section(doc: Document, r: Results) -> None:
    """Section 4: this run's validation sweeps, then the earlier evidence of docs/hyperparameters.md."""
    doc.add(Heading("Choosing the hyperparameters, and what was tried", 1, "hyper"))
    base = r.runs["classifier-numpy"]
    n_val = int(base["split"][1].size)
    p = _last(base["history"])["val_accuracy"]
    se = math.sqrt(p * (1 - p) / n_val) if n_val else float("nan")
    doc.add(Para(f"Settings are judged on the validation split only ({n_val} images), never on test. A "
                 f"validation accuracy of {fmt_metric(p)} on {n_val} images has a binomial standard error of "
                 f"about {fmt_metric(se)}, so single-seed differences smaller than about twice that are "
                 "noise. The sweeps below change one setting at a time around the default configuration."))
    doc.add(Heading("Sweeps made by this pipeline", 2))
    if not r.sweeps:
        doc.add(Para("This results folder holds no sweep (sweep/*/summary.csv).", "note"))
    for sweep in r.sweeps:
        _sweep_blocks(doc, r, sweep)
    if png := _sweep_plot(r):
        doc.add(Figures([Figure(png, "Validation accuracy per epoch, from sweep/*/histories.csv and the "
                                     "default runs' history.csv.")]))
    doc.add(Heading("Earlier measured evidence: docs/hyperparameters.md", 2))
    md = r.bytes("evidence/hyperparameters.md", required=False)
    if md is None:
        doc.add(Para("Not available: the pipeline found no docs/hyperparameters.md to copy (it did not run "
                     "from a source checkout).", "note"))
        return
    source = r.evidence.get("files", {}).get("hyperparameters.md", {})
    doc.add(Para("The default configuration was chosen by earlier and larger sweeps (two seeds per "
                 "setting, docs/sweeps.sh) that this pipeline does not re-run. Their write-up follows, "
                 "reproduced from evidence/hyperparameters.md, the copy the pipeline took of "
                 f"{source.get('from', 'the docs')} (SHA-256 {source.get('sha256', 'n/a')}). Its numbers "
                 "were measured then, not by this run.", "note"))
    blocks = markdown_blocks(md.decode("utf-8"), level_offset=1)
    if blocks and isinstance(blocks[0], Heading):
        blocks = blocks[1:]  # its own title; the heading above names it
    doc.add(*blocks)


def _gradcheck_blocks(doc: Document, r: Results) -> None:
    g = r.gradcheck
    limits = ", ".join(f"{k} {v:g}" for k, v in g.get("thresholds", {}).items())
    for model_name, model in g.items():
        if not isinstance(model, dict) or "optimizer" not in model:
            continue
        batch, arch = model.get("batch", {}), model.get("model", {})
        where = (f"the first training batch of {batch.get('data_dir')}" if batch.get("source") == "data"
                 else "seeded synthetic images")
        augmented = ", augmented as in training" if batch.get("augmented") else ""
        doc.add(Heading(f"First-iteration gradients: {model_name}", 2))
        doc.add(Para(f"Both implementations start from the same weights (the twin copies the numpy initial "
                     f"weights) and see the same {batch.get('size')} images ({where}, seed "
                     f"{batch.get('seed')}{augmented}) with the same dropout masks; model "
                     f"{' - '.join(map(str, arch.get('layers', [])))}, {arch.get('activation')}, dropout "
                     f"{fmt_num(arch.get('dropout'))}. Every parameter gradient of the numpy backprop is "
                     "compared with torch autograd's, in float64 and in float32."))
        rows = [[dtype, row["param"], " x ".join(map(str, row["shape"])), fmt_sci(row["max_abs_diff"]),
                 fmt_sci(row["max_rel_diff"]), fmt_cos(row["cosine"])]
                for dtype in DTYPES for row in model.get(dtype, [])]
        doc.add(Table(["dtype", "parameter", "shape", "max |numpy - torch|", "max rel. diff", "cosine"],
                      rows, "gradcheck.json. Relative difference = max over entries of |difference| / "
                      "max(|entry|, 1 % of the tensor's largest |entry|). Limits on the relative "
                      f"difference: {limits}."))
        opt = model["optimizer"]
        steps = opt.get("steps")
        rows = [[dtype, fmt_sci(opt[dtype]["max_abs_param_diff"]), str(opt[dtype]["worst_param"]),
                 fmt_sci(opt[dtype].get("max_abs_objective_diff"))] for dtype in DTYPES if dtype in opt]
        doc.add(Table(["dtype", f"max |param diff| after {steps} steps", "in", "max |loss diff|"], rows,
                      f"Both then trained {steps} SGD steps (momentum, Nesterov, weight decay and the "
                      "learning-rate schedule as configured) on the same batches; gradcheck.json."))
        if model.get("passed"):
            doc.add(Para("Verdict: passed (every difference within its limit)."))
        else:
            doc.add(Para("Verdict: FAILED: " + "; ".join(g.get("failures", [])), "warn"))


def _compare_table(summary: dict[str, Any], source: str, classes: list[str]) -> Table:
    """Macro metrics, then the F1 of every class (in label order), of both runs and their difference."""
    la, lb = summary["runs"]["a"]["label"], summary["runs"]["b"]["label"]
    labels = dict(SCALARS)
    by_name = {row["metric"]: row for row in summary["metrics"]}
    names = [k for k in labels if k in by_name] + [f"{c}.f1" for c in classes if f"{c}.f1" in by_name]
    rows = [[labels.get(n, n), fmt_metric(by_name[n]["a"]), fmt_metric(by_name[n]["b"]),
             fmt_diff(by_name[n]["difference"])] for n in names]
    return Table(["test metric", la, lb, f"{lb} - {la}"], rows, f"From {source}.")


def _curve_table(summary: dict[str, Any], source: str) -> Table:
    curves = summary["curves"]
    return Table(["curve", "largest |numpy - torch| in an epoch"],
                 [[k, fmt_sci(v)] for k, v in curves["max_abs_diff"].items()],
                 f"Over {curves['epochs_compared']} epochs; {source}.")


def _compare_figs(r: Results, task: str) -> Figures | None:
    items = [Figure(png, f"compare/{task}/{n}.png") for n in ("loss", "accuracy")
             if (png := r.figure(f"compare/{task}/{n}.png")) is not None]
    caption = "numpy (solid) and torch (dashed); train blue, validation orange."
    return Figures(items, caption) if items else None


def _side_by_side(a: dict[str, Any], b: dict[str, Any]) -> Table:
    rows = [
        ["last val. accuracy", *(fmt_metric(_last(x["history"])["val_accuracy"]) for x in (a, b))],
        ["training time", *(fmt_seconds(x["timings"].get("train_seconds")) for x in (a, b))],
        ["median epoch", *(fmt_seconds(x["timings"].get("epoch_seconds_median")) for x in (a, b))],
    ]
    return Table(["", a["name"], b["name"]], rows, "history.csv and env.json of both runs.")


def twin_section(doc: Document, r: Results, checks: dict[str, Any]) -> None:
    """Section 5: first-iteration gradients numpy vs torch, and both classifiers trained side by side."""
    a, b = r.runs["classifier-numpy"], r.runs["classifier-torch"]
    doc.add(Heading("The PyTorch twin", 1, "torch"))
    doc.add(Para("The twin (src/doodlelab/twin) builds the same layers from torch.nn, gets its gradients "
                 "from autograd and steps torch.optim.SGD, whose update formula the numpy optimizer "
                 "reproduces. It starts from the numpy initial weights and draws the same dropout masks, "
                 "batches and augmentation. " + checks["twin_sentence"]))
    _gradcheck_blocks(doc, r)
    doc.add(Heading("Trained side by side", 2))
    doc.add(_compare_table(r.compare["classifier"], "compare/classifier/metrics.json", r.data["classes"]))
    doc.add(_curve_table(r.compare["classifier"], "compare/classifier/metrics.json"))
    if fig := _compare_figs(r, "classifier"):
        doc.add(fig)
    doc.add(_side_by_side(a, b))


def _terms_plot(histories: dict[str, list[dict[str, Any]]], title: str) -> bytes | None:
    """One panel per objective term (``term_*`` columns), every labelled history overlaid in it."""
    names = list(dict.fromkeys(t for h in histories.values() for t in _terms(h)))
    if not names:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(max(3.6 * len(names), 4.0), 2.8), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, name in zip(axes[0], names):
        for i, (label, h) in enumerate(histories.items()):
            if name in h[0]:
                ax.plot([row["epoch"] for row in h], [row[name] for row in h], styles[i % 4], label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def _objective(cfg: dict[str, Any]) -> list[str]:
    t, l2 = cfg["two_tower"], cfg["optim"].get("l2")
    from doodlelab.nn.embedding_losses import FORMULAS

    loss = t.get("loss", "softmax_ce")  # runs made before two_tower.loss existed trained a softmax
    parts = [FORMULAS[loss].format(m=fmt_num(t.get("margin", 0)), s=fmt_num(t["logit_scale"]))
             + f" (term_{'ce' if 'loss' not in t else loss})"]
    if t.get("align_weight"):
        parts.append(f"{fmt_num(t['align_weight'])} x mean(1 - cos(image, its class)) (term_align)")
    if l2:
        parts.append(f"{fmt_num(l2)}/2 x the sum of squared weights (term_l2)")
    return parts


def two_tower_section(doc: Document, r: Results) -> None:
    """Section 6: the word-embedding classifier: towers, objective terms, word vectors, metrics."""
    a, b = r.runs["two_tower-numpy"], r.runs["two_tower-torch"]
    cfg = a["config"]
    t = cfg["two_tower"]
    doc.add(Heading("The word-embedding classifier (two towers)", 1, "two_tower"))
    doc.add(Para(f"One MLP embeds an image ({_arch(a['weights'], 'image.')}, "
                 f"{_n_params(a['weights'], 'image.'):,} parameters); a second maps the word vector of each "
                 f"class name into the same space ({_arch(a['weights'], 'text.')}, "
                 f"{_n_params(a['weights'], 'text.'):,} parameters). Both outputs are scaled to unit length, "
                 f"the scores of an image are {fmt_num(t['logit_scale'])} x its cosine similarity to every "
                 "class embedding, and the prediction is the most similar class. Optimizer, schedule, "
                 "augmentation, seed and train/validation split are the classifier's (shapes from "
                 f"{a['rel']}/weights.npz, settings from its config.json). The numpy version backpropagates "
                 "by hand through both towers and the normalisation; the torch twin uses autograd."))
    parts = _objective(cfg)
    terms = _terms(a["history"])
    logged = ", ".join(terms) if terms else "no term_ column"
    align, l2 = t.get("align_weight"), cfg["optim"].get("l2")
    on = {True: "on", False: "off"}
    doc.add(Para("Objective of these runs: " + " + ".join(parts) + ". Each term is logged per epoch in "
                 f"history.csv ({logged}) and drawn in its own panel below. Of the extra terms, the "
                 f"alignment pull (two_tower.align_weight = {fmt_num(align)}) is {on[bool(align)]} and the "
                 f"L2 penalty (optim.l2 = {fmt_num(l2)}) is {on[bool(l2)]} in these runs; the sweep in the "
                 f"second figure turns the alignment {on[not align]} (validation only)."))
    if png := _terms_plot({"numpy": a["history"], "torch": b["history"]},
                          "terms of the training objective (epoch means over the mini-batches, unweighted)"):
        doc.add(Figures([Figure(png, f"One panel per term_ column of {a['rel']}/history.csv and "
                                     f"{b['rel']}/history.csv.")]))
    for sweep in (s for s in r.sweeps if s["model"] == "two_tower"):
        histories = {"default": a["history"]}
        for label in dict.fromkeys(h["label"] for h in sweep["histories"]):
            histories[str(label)] = [h for h in sweep["histories"] if h["label"] == label]
        if png := _terms_plot(histories, f"sweep: {sweep['question']} (numpy, validation only)"):
            names = sorted({t for h in histories.values() for t in _terms(h)})
            scores = "; ".join(f"{row['label']}: validation accuracy {fmt_metric(row['val_accuracy'])}"
                               for row in sweep["rows"])
            doc.add(Figures([Figure(png, f"Each term in its own panel ({', '.join(names)}) from "
                                         f"{sweep['rel']}/histories.csv and {a['rel']}/history.csv. {scores} "
                                         f"(default {fmt_metric(_last(a['history'])['val_accuracy'])}).")]))
    doc.add(Heading("Word vectors", 2))
    vectors = a.get("class_vectors", {})
    rows = [[k, fmt_num(v)] for k, v in sorted(a["env"].get("word_vectors", {}).items())]
    same = "yes" if a.get("class_vectors_sha256") == b.get("class_vectors_sha256") else "NO"
    rows += [["class names (order of class_vectors.npz)", ", ".join(vectors.get("names", []))],
             ["class_vectors.npz shape", " x ".join(map(str, vectors.get("shape", ())))],
             [f"class_vectors.npz SHA-256 (the torch run's is the same: {same})",
              str(a.get("class_vectors_sha256"))]]
    doc.add(Table(["", "value"], rows, f"Provenance from {a['rel']}/env.json (word_vectors); the vectors "
                                       "the runs used are saved in each run's class_vectors.npz."))
    doc.add(Heading("Test metrics and curves, numpy and torch", 2))
    doc.add(_compare_table(r.compare["two_tower"], "compare/two_tower/metrics.json", r.data["classes"]))
    doc.add(_per_class_table(a["metrics"], f"{a['rel']}/metrics.json"))
    doc.add(Table(["", "value"], _training_rows(a), f"{a['rel']}/history.csv and env.json."))
    doc.add(_curve_table(r.compare["two_tower"], "compare/two_tower/metrics.json"))
    if fig := _compare_figs(r, "two_tower"):
        doc.add(fig)
    doc.add(_side_by_side(a, b))
    items = [Figure(png, f"{run['rel']}/figures/confusion.png") for run in (a, b)
             if (png := r.figure(f"{run['rel']}/figures/confusion.png")) is not None]
    if items:
        doc.add(Figures(items))
    if block := _run_figs(r, a, ["roc", "pr"]):
        doc.add(block)
    mine, theirs = a["metrics"], r.runs["classifier-numpy"]["metrics"]
    doc.add(Para("Against the softmax classifier (numpy): test accuracy "
                 f"{fmt_metric(mine.get('accuracy'))} vs {fmt_metric(theirs.get('accuracy'))}, macro ROC-AUC "
                 f"{fmt_metric(mine.get('roc_auc_macro'))} vs {fmt_metric(theirs.get('roc_auc_macro'))}."))


def _bench_rows(r: Results) -> list[list[str]]:
    folder = r.root / "evidence" / "benchmarks"
    rows = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            b = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        ratios = b.get("ratios", {})
        rows.append([path.name, _sec3(b.get("numpy_epoch_s")), _sec3(b.get("torch_epoch_s")),
                     _sec3(b.get("sklearn_epoch_s")), _ratio(ratios.get("numpy/torch")),
                     _ratio(ratios.get("numpy/sklearn")), fmt_num(b.get("threads")),
                     fmt_num(b.get("samples")), "-".join(map(str, b.get("layers", [])))])
    return rows


def speed_section(doc: Document, r: Results) -> None:
    """Section 7: training times of these runs, the copied benchmarks, the pipeline's step times."""
    doc.add(Heading("Speed", 1, "speed"))
    rows = [[name, str(run["env"].get("epochs_run")), fmt_seconds(run["timings"].get("train_seconds")),
             _sec3(run["timings"].get("epoch_seconds_median")) + " s",
             str(run["env"].get("training_threads")), str(run["env"].get("torch_threads", "n/a"))]
            for name, run in r.runs.items()]
    env = r.runs[RUN_NAMES[0]]["env"]
    doc.add(Table(["run", "epochs", "training time", "median epoch", "BLAS threads", "torch threads"], rows,
                  f"Measured while training these runs (env.json timings) on {env.get('platform')}, "
                  f"{env.get('cpu_count')} CPUs. Other processes on the machine slow a run down; compare "
                  "backends with the benchmark below, which interleaves them."))
    if rows := _bench_rows(r):
        doc.add(Table(["file", "numpy s/epoch", "torch", "sklearn", "numpy/torch", "numpy/sklearn", "threads",
                       "images", "layers"], rows,
                      "Seconds per epoch measured earlier by doodlelab bench (benchmarks/README.md says how, "
                      "and how loaded the machine was for each file), copied by the pipeline from "
                      "benchmarks/results/ into evidence/benchmarks/. Not measured by this run."))
    else:
        doc.add(Para("No benchmark results were copied (evidence/benchmarks/ is empty or absent).", "note"))
    steps = r.manifest.get("steps", {})
    order = [n for n in r.manifest.get("step_order", []) if n in steps]
    order += [n for n in steps if n not in order]
    done = r.manifest.get("this_invocation", {})
    rows = [[name, fmt_seconds(steps[name].get("seconds")), str(steps[name].get("finished", "")),
             done.get(name, "")] for name in order]
    doc.add(Table(["pipeline step", "time", "finished (UTC)", "last invocation"], rows,
                  "pipeline.json: how long each step took when it last ran ('reused': complete, not "
                  "redone)."))


def repro_section(doc: Document, r: Results) -> None:
    """Section 8: commands, seed, versions, commit and checksums."""
    doc.add(Heading("Reproducibility", 1, "repro"))
    m = r.manifest
    git = m.get("git", {})
    dirty = " (with uncommitted changes to tracked files)" if git.get("dirty") else ""
    seed = r.runs[RUN_NAMES[0]]["config"]["train"]["seed"]
    doc.add(Para(f"Code: git commit {git.get('commit')}{dirty}. Seed {seed} for every run: it fixes the "
                 "split, the initial weights, the batch order, the dropout masks and the augmentation. The "
                 "same commands on the same data, library versions and thread count (DOODLELAB_THREADS) "
                 "train the same runs again; metrics.json holds no timings, so it compares byte for byte. "
                 "The commands (pipeline.json):"))
    doc.add(Code("\n".join(m.get("commands", []))))
    keys = ["doodlelab", "python", "numpy", "scikit_learn", "matplotlib", "torch", "blas",
            "training_threads", "torch_threads", "platform", "cpu_count", "git_commit", "seed"]
    rows = []
    for k in keys:
        values = {}
        for name, run in r.runs.items():
            v = run["env"].get(k, "n/a")
            values[name] = ", ".join(v) if isinstance(v, list) else fmt_num(v)
        if len(set(values.values())) == 1:
            rows.append([k, next(iter(values.values()))])
        else:
            rows.append([k, "; ".join(f"{name}: {v}" for name, v in values.items())])
    doc.add(Table(["", "value (all four runs unless named)"], rows, "env.json of each run."))
    rows = [[name, run["sha256"][WEIGHTS][:16], run["sha256"][METRICS][:16],
             run["sha256"][SPLIT][:16]] for name, run in r.runs.items()]
    doc.add(Table(["run", WEIGHTS, METRICS, SPLIT], rows,
                  "First 16 hex digits of the SHA-256 of each run's files, computed by the report."))
    built = datetime.now(timezone.utc).isoformat(timespec="seconds")
    doc.add(Para(f"Settings given to doodlelab run: {', '.join(m.get('settings', [])) or 'none (defaults)'}. "
                 f"Results folder {m.get('out')}; pipeline started {m.get('started')} and finished "
                 f"{m.get('finished')} (UTC). Report built {built} by doodlelab.report from these files "
                 "only.",
                 "note"))


# -- entry points -------------------------------------------------------------------------------


def build_document(results_dir: str | Path) -> Document:
    """Return the report of ``results_dir`` as a :class:`Document`; reads the files, writes nothing."""
    r = Results(Path(results_dir))
    checks = cross_checks(r)
    counts = r.data["counts"]
    commit = str(r.manifest.get("git", {}).get("commit"))[:12]
    doc = Document(
        "doodlelab: deep learning from first principles on Quick, Draw! doodles",
        f"Report of {r.root.resolve()}, built from the files there. Data: "
        f"{sum(counts['train_file'].values())} training and {sum(counts['test'].values())} test images, "
        f"{len(r.data['classes'])} classes. Code: doodlelab {r.runs[RUN_NAMES[0]]['env'].get('doodlelab')}, "
        f"commit {commit}.",
    )
    summary_section(doc, r, checks)
    data_section(doc, r, checks)
    classifier_section(doc, r)
    hyper_section(doc, r)
    twin_section(doc, r, checks)
    two_tower_section(doc, r)
    speed_section(doc, r)
    repro_section(doc, r)
    return doc


def build_report(results_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report/report.html`` and ``report/report.pdf`` under ``results_dir``; return their paths."""
    from doodlelab.fileio import write_bytes, write_text

    results_dir = Path(results_dir)
    doc = build_document(results_dir)
    html_path = write_text(results_dir / "report" / "report.html", render_html(doc))
    pdf_path = write_bytes(results_dir / "report" / "report.pdf", render_pdf(doc))
    return html_path, pdf_path
