"""``doodlelab run``: every experiment the report needs, in one resumable pipeline.

:func:`run_all` writes, under ``out/`` (default ``results/``)::

    pipeline.json                 settings, per-step stamps and timings, split hashes, commands
    data/data.json                data folder, checksums, counts per class (train / validation / test)
    data/split.npz, examples.png  the split all four runs must share; a few doodles per class (+ .csv)
    runs/classifier-numpy         the four run folders (doodlelab train), one Config, one seed,
    runs/classifier-torch           one prepared train/validation split handed to all four
    runs/two_tower-numpy
    runs/two_tower-torch
    validation.json               validation accuracy of the numpy runs' weights, plain and with shifts
    gradcheck.json                numpy backprop vs torch autograd on the real first batches, both models
    compare/classifier            numpy vs torch side by side (doodlelab compare)
    compare/two_tower
    sweep/<question>/             small validation-only sweeps (doodlelab sweep), one question each
    evidence/                     copies of docs/hyperparameters.md and benchmarks/results/*.json
    report/report.html, .pdf      the report (doodlelab.report), built from the files above only

Resuming: a step whose outputs are complete and were made with the same settings is
skipped (a run's own config.json and env.json say so; for the other steps a *stamp* of
their settings recorded in ``pipeline.json``: configuration, data checksums, grid, seeds).
An incomplete step (an interrupted run has no ``metrics.json``, an interrupted sweep no
``summary.csv``) is redone. A complete step made with other settings is a UserError
unless ``overwrite``, raised before ``pipeline.json`` is touched: results of two
configurations are never mixed silently. (A changed default in config.py counts as
other settings.) The comparisons, ``validation.json``, the evidence copies and the
report are cheap functions of other outputs, so they are redone whenever their inputs
changed (the report: every time).

``quick=True`` shrinks everything (2 epochs, tiny widths, tiny sweeps) for tests.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from doodlelab.errors import UserError
from doodlelab.runfolder import SPLIT, RunFolder

RUNS = (("classifier", "numpy"), ("classifier", "torch"), ("two_tower", "numpy"), ("two_tower", "torch"))
MANIFEST = "pipeline.json"
GRADCHECK_STEPS = 5  # optimizer steps whose parameters are compared after the first gradients
GRADCHECK_MODELS = ("classifier", "two_tower")
DEFAULT_OUT = Path("results")

# The settings ``quick=True`` adds (before the caller's own overrides), as ``--set`` strings.
QUICK_SETTINGS = (
    "train.epochs=2",
    "model.hidden=[32]",
    "train.batch_size=32",
    "two_tower.embed_dim=8",
    "two_tower.text_hidden=[8]",
)

# One question per sweep, around the configuration: (name, model, grid, what it asks, seeds
# as offsets from train.seed). The configuration itself is the run in runs/<model>-numpy (same
# seed, same split), so a one-seed sweep does not train it again. The alignment question flips
# the term: off if the configuration has it, else on.
Sweep = tuple[str, str, dict[str, list[Any]], str, tuple[int, ...]]

# The two-tower loss study (docs/loss_study.md): the ranking hinge at three margins, the align
# term on top of it at two, the other objectives at one margin each, the align term alone and
# the softmax (cross-entropy) for comparison; three seeds per point, a shorter schedule. Margins
# are on cosines (the triplet's on squared distances, 2 - 2 cos: twice as wide).
LOSS_STUDY_EPOCHS = 30
LOSS_STUDY_SEEDS = (0, 1, 2)
LOSS_STUDY: tuple[tuple[str, str, dict[str, list[Any]], str], ...] = (
    ("loss_hinge_rank", "hinge_rank", {"two_tower.margin": [0.1, 0.3, 1.0], "two_tower.align_weight": [0.0]},
     "the ranking hinge (DeViSE): its margin"),
    ("loss_hinge_rank_align", "hinge_rank", {"two_tower.margin": [0.1, 1.0], "two_tower.align_weight": [0.5]},
     "the ranking hinge with the align term on top"),
    ("loss_hardest_hinge", "hardest_hinge", {"two_tower.margin": [0.3], "two_tower.align_weight": [0.0]},
     "the hardest-negative hinge (structured SVM)"),
    ("loss_triplet", "triplet", {"two_tower.margin": [0.5], "two_tower.align_weight": [0.0]},
     "the triplet loss, one sampled negative class per image"),
    ("loss_cosine_contrastive", "cosine_contrastive",
     {"two_tower.margin": [0.0], "two_tower.align_weight": [0.0]},
     "the cosine contrastive loss: pull to 1, push below the margin"),
    ("loss_align_only", "align_only", {"two_tower.align_weight": [0.0]},
     "the align term alone (collapses: nothing pushes the classes apart)"),
    ("loss_softmax_ce", "softmax_ce", {"two_tower.align_weight": [0.0, 0.5]},
     "softmax cross-entropy on the cosines (a cross-entropy variant, outside Part II's rule; "
     "for comparison only)"),
)


def loss_study(quick: bool = False) -> list[Sweep]:
    """Return the two-tower loss study: one sweep per question, every objective in one of them."""
    epochs = {} if quick else {"train.epochs": [LOSS_STUDY_EPOCHS]}
    seeds = (0,) if quick else LOSS_STUDY_SEEDS
    out: list[Sweep] = []
    for name, loss, grid, question in LOSS_STUDY:
        if quick:  # one margin: a smoke test of every objective
            grid = {k: v[:1] if k == "two_tower.margin" else v for k, v in grid.items()}
        out.append((name, "two_tower", {"two_tower.loss": [loss], **grid, **epochs}, question, seeds))
    return out


def sweeps_for(cfg: Any, quick: bool = False) -> tuple[Sweep, ...]:
    """Return the validation sweeps the pipeline runs around ``cfg`` (tiny widths when ``quick``)."""
    align = 0.0 if cfg.two_tower.align_weight else 0.5
    hidden = [[16], [64]] if quick else [[256, 128], [1024, 512]]
    out: list[Sweep] = [
        ("lr", "classifier", {"optim.lr": [0.02, 0.1]}, "learning rate", (0,)),
        ("hidden", "classifier", {"model.hidden": hidden}, "width of the hidden layers", (0,)),
    ]
    if not quick:
        out.append(("augment", "classifier", {"augment.enabled": [not cfg.augment.enabled]},
                    "random pixel shifts of the training images", (0,)))
    out.append(("two_tower_align", "two_tower", {"two_tower.align_weight": [align]},
                "extra alignment term of the word-embedding loss", (0,)))
    return (*out, *loss_study(quick))


SWEEP_FILES = ("sweep.csv", "histories.csv", "summary.csv")  # summary.csv is written last
COMPARE_FILES = ("loss.png", "loss.csv", "accuracy.png", "accuracy.csv")  # + compare's summaries


def run_name(task: str, backend: str) -> str:
    """Return the folder name of one run under ``runs/``: ``classifier-numpy`` etc."""
    return f"{task}-{backend}"


def repo_root() -> Path | None:
    """Return the source checkout this package runs from (it has docs/ and benchmarks/), if any."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "src" / "doodlelab").is_dir() else None


def git_state() -> dict[str, Any]:
    """Return the commit of the checkout and whether tracked files differ from it."""
    from doodlelab.runs import git_commit

    state: dict[str, Any] = {"commit": git_commit(), "dirty": None}
    root = repo_root()
    if root is not None and state["commit"]:
        try:
            out = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10, check=True)
            state["dirty"] = bool(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return state


def _toml(value: Any) -> str:
    """Return ``value`` in the TOML syntax ``--set``/``--grid`` read (JSON's is the same here)."""
    return json.dumps(value, separators=(",", ":"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


class _Pipeline:
    """The state of one :func:`run_all` call: settings, manifest, what ran and what was reused."""

    def __init__(self, data: str | Path | None, out: Path, quick: bool, overwrite: bool,
                 progress: bool | None, overrides: Sequence[str], log: Callable[[str], None]) -> None:
        from doodlelab.config import load_config
        from doodlelab.data.prepare import prepare

        self.settings = [*(QUICK_SETTINGS if quick else ()), *overrides]
        self.cfg = load_config(None, self.settings)  # a bad --set fails before anything runs
        self.data = prepare(self.cfg, data, word_vectors=True)  # read once; every step gets it
        self.data_dir = self.data.data_dir
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"--out {self.out} exists and is not a folder; choose another path")
        self.quick, self.overwrite, self.progress, self.log = quick, overwrite, progress, log
        self.sweeps = sweeps_for(self.cfg, quick)
        old = _read_json(self.out / MANIFEST)
        self.old_steps: dict[str, Any] = (old or {}).get("steps", {}) if isinstance(old, dict) else {}
        self.manifest: dict[str, Any] = {
            "started": _now(),
            "quick": quick,
            "settings": self.settings,
            "config": self.cfg.to_dict(),
            "data_dir": str(self.data_dir.resolve()),
            "out": str(self.out.resolve()),
            "git": git_state(),
            "python": sys.version.split()[0],
            "steps": dict(self.old_steps),
            "this_invocation": {},
            "step_order": [],
        }

    # -- bookkeeping -------------------------------------------------------------------------

    def save(self) -> None:
        from doodlelab.fileio import write_json

        write_json(self.out / MANIFEST, self.manifest)

    def step(self, name: str, stamp: dict[str, Any], complete: bool, work: Callable[[], Any], *,
             derived: bool = False, same: bool | None = None) -> bool:
        """Run ``work`` unless its outputs are ``complete`` with the same ``stamp``; return whether it ran.

        ``same`` (if given) says whether the outputs were made with these settings, read
        from the outputs themselves; else the stamp recorded in pipeline.json decides.
        A complete step made otherwise is a UserError unless ``overwrite`` (or
        ``derived``: a cheap function of other outputs, simply redone).
        """
        recorded = self.old_steps.get(name, {}).get("stamp")
        stamp = json.loads(json.dumps(stamp))  # the form it takes in pipeline.json
        self.manifest["step_order"].append(name)
        why = "other settings"
        if same is None:
            same = recorded == stamp
            if recorded is None:
                why = f"settings that {MANIFEST} does not record"
        if complete and not self.overwrite:
            if same:
                self.manifest["this_invocation"][name] = "reused"
                self.log(f"{name}: complete, reused")
                return False
            if not derived:
                raise UserError(f"{self.out}: {name} was made with {why}; pass --overwrite to redo it "
                                "or choose another --out")
        self.log(f"{name}: running")
        tick = time.perf_counter()
        work()
        seconds = round(time.perf_counter() - tick, 2)
        self.manifest["steps"][name] = {"stamp": stamp, "seconds": seconds, "finished": _now()}
        self.manifest["this_invocation"][name] = "ran"
        self.save()
        self.log(f"{name}: done in {seconds:g} s")
        return True

    # -- steps -------------------------------------------------------------------------------

    def data_step(self) -> None:
        """Write data/data.json (checksums, counts per class), the expected split and example doodles."""
        import numpy as np

        from doodlelab.data.split import save_split
        from doodlelab.fileio import write_csv, write_json

        train, test, classes = self.data.train, self.data.test, self.data.classes
        self.checksums = self.data.checksums
        train_idx, val_idx = self.data.train_idx, self.data.val_idx
        folder = self.out / "data"

        def counts(y: np.ndarray) -> dict[str, int]:
            return {name: int((y == c).sum()) for c, name in enumerate(classes)}

        def work() -> None:
            write_json(folder / "data.json", {
                "data_dir": str(self.data_dir.resolve()),
                "checksums": self.checksums,
                "classes": list(classes),
                "seed": self.cfg.train.seed,
                "val_fraction": self.cfg.data.val_fraction,
                "counts": {"train_file": counts(train.y), "train": counts(train.y[train_idx]),
                           "validation": counts(train.y[val_idx]), "test": counts(test.y)},
                "image_shape": [28, 28],
            })
            save_split(folder / SPLIT, train_idx, val_idx)
            rows = _plot_examples(train.x[train_idx], train.y[train_idx], train_idx, classes,
                                  folder / "examples.png")
            write_csv(folder / "examples.csv", rows, ["class", "train_index"])

        stamp = {"checksums": self.checksums, "seed": self.cfg.train.seed,
                 "val_fraction": self.cfg.data.val_fraction}
        complete = all((folder / n).is_file() for n in ("data.json", SPLIT, "examples.png"))
        self.step("data", stamp, complete, work)  # other data, seed or fraction: every run differs too

    def run_step(self, task: str, backend: str) -> None:
        """Train one of the four runs (doodlelab train) unless it is complete with these settings."""
        from doodlelab.runs import run_identity, train_run

        name = run_name(task, backend)
        folder = self.out / "runs" / name
        stamp = {"task": task, "backend": backend, "config": self.cfg.to_dict(), "checksums": self.checksums}
        complete = RunFolder(folder).finished
        same = complete and _same_run(folder, task, backend, self.cfg.to_dict(), self.checksums)

        def work() -> None:  # an interrupted run of these settings continues from its checkpoint
            resume = RunFolder(folder).can_resume(run_identity(self.data, self.cfg, backend, task))
            train_run(self.data, folder, self.cfg, backend=backend, task=task, overwrite=not resume,
                      progress=self.progress, resume=resume)

        self.step(f"runs/{name}", stamp, complete, work, same=same)

    def validation_step(self) -> None:
        """Write validation.json: validation accuracy of the numpy runs' saved weights, plain and with
        test-time shifts, so the sweep tables can set the default beside every other point."""
        from doodlelab.fileio import write_json
        from doodlelab.runfolder import WEIGHTS
        from doodlelab.scoring import probabilities

        names = [run_name(task, "numpy") for task in ("classifier", "two_tower")]
        path = self.out / "validation.json"
        stamp = {name: RunFolder(self.out / "runs" / name).sha256(WEIGHTS)[WEIGHTS] for name in names}

        def work() -> None:
            val_idx = self.data.val_idx
            x, y = self.data.train.x[val_idx], self.data.train.y[val_idx]
            scores = {}
            for name in names:
                model = RunFolder(self.out / "runs" / name).load_task()
                acc = {tta: float((probabilities(model, x, tta=tta).argmax(axis=1) == y).mean())
                       for tta in (False, True)}
                scores[name] = {"n_val": int(y.size), "val_accuracy": acc[False],
                                "val_accuracy_tta": acc[True]}
            write_json(path, scores)

        self.step("validation", stamp, path.is_file(), work, derived=True)

    def gradcheck_step(self) -> None:
        """Write gradcheck.json: first-iteration gradients and a few steps of both models, float64 and
        float32, on the first training batches of the real data."""
        from doodlelab.fileio import write_json

        path = self.out / "gradcheck.json"
        stamp = {"config": self.cfg.to_dict(), "checksums": self.checksums, "steps": GRADCHECK_STEPS,
                 "models": list(GRADCHECK_MODELS)}

        def work() -> None:
            from doodlelab.registry import require_torch
            from doodlelab.studies.gradcheck import run_gradcheck

            require_torch("the gradient check")
            write_json(path, run_gradcheck(self.cfg, self.data, steps=GRADCHECK_STEPS,
                                           models=GRADCHECK_MODELS))

        report = _read_json(path)
        # a report judged by absolute differences (before relative errors) is redone, not reused
        complete = isinstance(report, dict) and all(
            "max_rel_param_diff" in report.get(m, {}).get("optimizer", {}).get("float32", {})
            for m in GRADCHECK_MODELS)
        self.step("gradcheck", stamp, complete, work)

    def compare_step(self, task: str) -> None:
        """numpy vs torch of one model (doodlelab compare); redone whenever either run changed."""
        from doodlelab.runfolder import HISTORY, METRICS
        from doodlelab.studies.compare import SUMMARY_CSV, SUMMARY_JSON, compare_runs

        a = self.out / "runs" / run_name(task, "numpy")
        b = self.out / "runs" / run_name(task, "torch")
        folder = self.out / "compare" / task
        stamp = {"inputs": {str((run / name).relative_to(self.out)): digest for run in (a, b)
                            for name, digest in RunFolder(run).sha256(METRICS, HISTORY).items()}}
        complete = all((folder / n).is_file() for n in (SUMMARY_JSON, SUMMARY_CSV, *COMPARE_FILES))
        self.step(f"compare/{task}", stamp, complete, lambda: compare_runs(a, b, folder), derived=True)

    def sweep_step(self, name: str, model: str, grid: dict[str, list[Any]], offsets: tuple[int, ...]) -> None:
        """One validation-only sweep (doodlelab sweep) of ``grid``, seeds ``train.seed + offsets``."""
        from doodlelab.studies.sweep import run_sweep

        folder = self.out / "sweep" / name
        seeds = self.sweep_seeds(offsets)
        stamp = {"model": model, "grid": grid, "seeds": seeds, "config": self.cfg.to_dict(),
                 "checksums": self.checksums}

        def work() -> None:
            for file in SWEEP_FILES:  # an interrupted or replaced sweep starts over
                (folder / file).unlink(missing_ok=True)
            run_sweep(data=self.data, out=folder, base=self.cfg, grid=grid, seeds=seeds,
                      backend="numpy", progress=self.progress, model=model)

        complete = all((folder / f).is_file() for f in SWEEP_FILES)
        self.step(f"sweep/{name}", stamp, complete, work)

    def sweep_seeds(self, offsets: tuple[int, ...]) -> list[int]:
        """Return the training seeds of a sweep: ``train.seed`` plus each offset."""
        return [self.cfg.train.seed + k for k in offsets]

    def evidence_step(self) -> None:
        """Copy docs/hyperparameters.md, docs/sweeps.sh and benchmarks/results/*.json next to the results."""
        from doodlelab.fileio import write_bytes, write_json

        root = repo_root()
        folder = self.out / "evidence"
        sources: list[tuple[Path, Path]] = []
        if root is not None:
            for rel in ("docs/hyperparameters.md", "docs/sweeps.sh"):
                if (root / rel).is_file():
                    sources.append((root / rel, folder / Path(rel).name))
            bench = root / "benchmarks" / "results"
            if bench.is_dir():
                sources += [(p, folder / "benchmarks" / p.name) for p in sorted(bench.glob("*.json"))]
        from doodlelab.fileio import sha256_file

        listing = {str(dst.relative_to(folder)): {"from": str(src.relative_to(root)) if root else str(src),
                                                  "sha256": sha256_file(src)} for src, dst in sources}

        def work() -> None:
            if folder.is_dir():
                shutil.rmtree(folder)  # only what the last copy put there
            for src, dst in sources:
                write_bytes(dst, src.read_bytes())
            write_json(folder / "sources.json", {"repo": str(root) if root else None,
                                                 "git": self.manifest["git"], "files": listing})

        complete = (folder / "sources.json").is_file() and all(dst.is_file() for _, dst in sources)
        self.step("evidence", {"files": listing}, complete, work, derived=True)

    def commands(self) -> list[str]:
        """Return the CLI commands equivalent to this pipeline, step by step."""
        data, out = str(self.data_dir), str(self.out)
        sets = "".join(f" --set '{s}'" for s in self.settings)
        lines = [f"doodlelab run --data {data} --out {out}"
                 + (" --quick" if self.quick else "")
                 + "".join(f" --set '{s}'" for s in self.settings[len(QUICK_SETTINGS) if self.quick else 0:]),
                 "# which does, step by step:"]
        for task, backend in RUNS:
            lines.append(f"doodlelab train {task} --backend {backend} --data {data} "
                         f"--out {out}/runs/{run_name(task, backend)}{sets}")
        lines.append(f"doodlelab gradcheck --model all --data {data} --steps {GRADCHECK_STEPS} "
                     f"--json {out}/gradcheck.json{sets}")
        for task in ("classifier", "two_tower"):
            lines.append(f"doodlelab compare {out}/runs/{run_name(task, 'numpy')} "
                         f"{out}/runs/{run_name(task, 'torch')} --out {out}/compare/{task}")
        for name, model, grid, _, offsets in self.sweeps:
            grids = "".join(f" --grid '{k}={_toml(v)}'" for k, v in grid.items())
            seeds = ",".join(map(str, self.sweep_seeds(offsets)))
            lines.append(f"doodlelab sweep --model {model} --data {data} --seeds {seeds} "
                         f"--out {out}/sweep/{name}{grids}{sets}")
        lines.append(f"doodlelab report {out}")
        return lines

    def run(self) -> Path:
        from doodlelab.report import build_report

        # pipeline.json is first written when a step has run: a call refused for settings that
        # differ from the results already there leaves the folder exactly as it was.
        self.out.mkdir(parents=True, exist_ok=True)
        self.data_step()
        for task, backend in RUNS:
            self.run_step(task, backend)
        self.validation_step()
        self.gradcheck_step()
        for task in ("classifier", "two_tower"):
            self.compare_step(task)
        for name, model, grid, _, offsets in self.sweeps:
            self.sweep_step(name, model, grid, offsets)
        self.manifest["sweeps"] = [{"name": n, "model": m, "grid": g, "question": q,
                                    "seeds": self.sweep_seeds(k)} for n, m, g, q, k in self.sweeps]
        self.evidence_step()
        self.manifest["commands"] = self.commands()
        self.manifest["finished"] = _now()
        self.save()
        tick = time.perf_counter()
        self.log("report: building")
        html, pdf = build_report(self.out)
        self.manifest["this_invocation"]["report"] = "ran"
        self.manifest["report_seconds"] = round(time.perf_counter() - tick, 2)
        self.save()
        self.log(f"report: {html} and {pdf}")
        return self.out


def _same_run(folder: Path, task: str, backend: str, cfg: dict[str, Any], checksums: dict[str, str]) -> bool:
    """Return whether the finished run in ``folder`` was trained with ``task``, ``backend``, ``cfg``
    on data with these ``checksums`` (read from its config and env)."""
    try:
        run = RunFolder(folder)
        raw, env = run.config, run.env
    except UserError:
        return False
    return (raw.get("task", "classifier") == task and raw.get("backend") == backend
            and all(raw.get(section) == values for section, values in cfg.items())
            and env.get("data_checksums") == checksums)


def _plot_examples(x: Any, y: Any, index: Any, classes: Sequence[str], path: Path,
                   per_class: int = 8) -> list[dict[str, Any]]:
    """Draw the first ``per_class`` training images of every class; return the rows of their CSV."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    from doodlelab.fileio import write_bytes

    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 0.9, len(classes) * 0.95),
                             squeeze=False)
    rows = []
    for c, name in enumerate(classes):
        members = np.flatnonzero(y == c)[:per_class]
        for j, ax in enumerate(axes[c]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < members.size:
                ax.imshow(x[members[j]].reshape(28, 28), cmap="gray_r", vmin=0, vmax=1)
                rows.append({"class": name, "train_index": int(index[members[j]])})
        axes[c][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("training images, the first of each class", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    write_bytes(path, buf.getvalue())
    return rows


def run_all(data: str | Path | None, out: str | Path = DEFAULT_OUT, *, quick: bool = False,
            overwrite: bool = False, progress: bool | None = None, overrides: Sequence[str] = (),
            log: Callable[[str], None] | None = None) -> Path:
    """Run every step of the pipeline (see the module docstring) and build the report; return ``out``.

    ``overrides`` are ``section.key=value`` settings (as ``--set``) applied to every run,
    the gradient check and the sweeps, after the ``quick`` ones. ``log`` receives one
    line per step. Raises UserError on bad input or results made with other settings.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    pipeline = _Pipeline(data, Path(out), quick, overwrite, progress, list(overrides),
                         log or (lambda _line: None))
    return pipeline.run()


# -- command line ------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``report`` to the ``doodlelab`` subcommands (dispatch both to :func:`command`)."""
    run = subparsers.add_parser("run", help="every experiment and the report, resumable (results/)")
    run.add_argument("--data", metavar="DIR",
                     help="course folder (default: $DOODLELAB_DATA, then ./data/quickdraw_subset_np)")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                     help=f"results folder (default {DEFAULT_OUT}); a re-run resumes what is missing")
    run.add_argument("--quick", action="store_true", help="2 epochs, tiny models and sweeps (a smoke test)")
    run.add_argument("--overwrite", action="store_true",
                     help="redo every step even if its outputs are complete")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a setting of every run, e.g. --set train.epochs=50 (repeatable)")
    rep = subparsers.add_parser("report", help="re-render report.html and report.pdf from a results folder")
    rep.add_argument("results_dir", type=Path, metavar="RESULTS_DIR")


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab run`` or ``doodlelab report``; return 0, or 1 if the gradient check failed."""
    if args.command == "report":
        from doodlelab.report import build_report

        html, pdf = build_report(args.results_dir)
        print(f"report -> {html}, {pdf}")
        return 0
    out = run_all(args.data, args.out, quick=args.quick, overwrite=args.overwrite,
                  overrides=args.overrides, log=lambda line: print(f"doodlelab run: {line}", file=sys.stderr))
    report = _read_json(out / "gradcheck.json") or {}
    print(f"results -> {out}; report -> {out / 'report' / 'report.html'}, {out / 'report' / 'report.pdf'}")
    if report.get("passed") is False:
        for problem in report.get("failures", []):
            print(f"doodlelab: gradcheck failed: {problem}", file=sys.stderr)
        return 1
    return 0
