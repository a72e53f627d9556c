"""``doodlelab run``: every experiment the report needs, as a list of resumable steps.

:data:`STEPS` runs top to bottom over one :class:`Context` (the data read once, the
settings, the :class:`~doodlelab.pipeline.ledger.Ledger` of ``pipeline.json``); the layout of
what they write is :mod:`doodlelab.pipeline.layout`. The heavy work (the four runs, the
gradient check, every study row) is jobs in stages (:mod:`doodlelab.pipeline.stages`) run by
:func:`doodlelab.pipeline.ledger.run_stages` in ``--jobs`` worker processes (default one per
usable CPU, each on one BLAS thread). A finished run or study row is reused on a
re-run; a run or gradient check made with other settings stops the job unless
``--overwrite``. Study rows are keyed by a hash of their settings, so rows shared by
several studies (the configuration itself) are trained once.

The studies are :mod:`doodlelab.pipeline.plan`'s: each setting's seeds train together as one
job (:mod:`doodlelab.pipeline.rows`), and :mod:`doodlelab.pipeline.summaries` turns a study's
rows into its folder and its decision. ``quick=True`` shrinks everything (2 epochs, tiny
widths, every study with two seeds and one epoch) for tests. The subcommands are in
:mod:`doodlelab.pipeline.subcommands`.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doodlelab.errors import UserError
from doodlelab.files.lock import FolderLock
from doodlelab.geometry import SHAPE
from doodlelab.kinds import CLASSIFIER, KINDS, NUMPY, TORCH, TWO_TOWER
from doodlelab.pipeline import layout
from doodlelab.pipeline.ledger import Ledger, default_jobs, now
from doodlelab.pipeline.plan import Plan, plan_for
from doodlelab.pipeline.rows import STUDY_TRAIN_IMAGES, StudyRow
from doodlelab.runs.folder import HISTORY, METRICS, WEIGHTS
from doodlelab.training.registry import spec

INIT_SEEDS = (0, 1, 2, 3, 4)  # seeds of the gradient norms at initialisation
EMBEDDING_KIND = next(k for k in KINDS if spec(k).word_vectors)  # the kind whose embeddings are drawn
DEFAULT_OUT = Path("results")

# The settings ``quick=True`` adds (before the caller's own overrides), as ``--set`` strings.
QUICK_SETTINGS = (
    "train.epochs=2",
    "model.hidden=[32]",
    "train.batch_size=32",
    "two_tower.embed_dim=8",
    "two_tower.text_hidden=[8]",
)

@dataclass
class Context:
    """What every step reads: settings, the data (read once), the ledger of ``pipeline.json``."""

    cfg: Any
    settings: list[str]
    data_dir: Path
    out: Path
    quick: bool
    workers: int
    progress: bool | None
    ledger: Ledger
    report_fields: dict[str, Any]
    plan: Plan
    started: float  # time.perf_counter() when the call began
    data: Any = None  # the Prepared data (doodlelab.data.prepare), read once by data_step
    rows: list[StudyRow] = field(default_factory=list)  # every study row, set by jobs_step
    chosen: dict[str, str] = field(default_factory=dict)  # study name -> its chosen setting's name
    final: dict[str, Any] = field(default_factory=dict)  # kind -> the final models' Config

    @property
    def checksums(self) -> dict[str, str]:
        return self.data.checksums

    def log(self, line: str) -> None:
        self.ledger.log(line)


# -- the steps ---------------------------------------------------------------------------------


def data_step(ctx: Context) -> None:
    """Read and validate the data once; write data/data.json, the split and example doodles."""
    from doodlelab.data.prepare import prepare
    from doodlelab.data.split import SPLIT_FILE, save_split
    from doodlelab.files.atomic import write_json
    from doodlelab.training.figures import plot_examples

    data = prepare(ctx.cfg, ctx.data_dir)  # read and validated once; workers read their own copy
    train, test, checksums = data.train, data.test, data.checksums
    ctx.data = data
    train_idx, val_idx = data.train_idx, data.val_idx
    folder = layout.data_dir(ctx.out)

    def counts(y: Any) -> dict[str, int]:
        return {name: int((y == c).sum()) for c, name in enumerate(train.classes)}

    def work() -> None:
        write_json(folder / layout.DATA_JSON, {
            "data_dir": str(ctx.data_dir.resolve()), "checksums": checksums, "classes": list(train.classes),
            "seed": ctx.cfg.train.seed, "val_fraction": ctx.cfg.data.val_fraction,
            "counts": {"train_file": counts(train.y), "train": counts(train.y[train_idx]),
                       "validation": counts(train.y[val_idx]), "test": counts(test.y)},
            "image_shape": list(SHAPE)})
        save_split(folder / SPLIT_FILE, train_idx, val_idx)
        plot_examples(train.x[train_idx], train.y[train_idx], train_idx, train.classes, folder)

    stamp = {"checksums": checksums, "seed": ctx.cfg.train.seed, "val_fraction": ctx.cfg.data.val_fraction}
    complete = all((folder / n).is_file() for n in layout.DATA_FILES)
    ctx.ledger.step("data", stamp, complete, work)


def jobs_step(ctx: Context) -> None:
    """Train and decide the studies, then the final models with the studies' picks (pipeline.stages)."""
    from doodlelab.pipeline.stages import train_and_decide

    train_and_decide(ctx)


def compare_step(ctx: Context) -> None:
    """numpy vs torch of each model, and Part I's numpy model vs Part II's (doodlelab compare);
    each redone whenever either of its runs changed."""
    pairs = [(f"compare/{kind}", layout.run_dir(ctx.out, kind, NUMPY), layout.run_dir(ctx.out, kind, TORCH),
              layout.compare_dir(ctx.out, kind)) for kind in KINDS]
    pairs.append(("compare/part1-vs-part2", layout.run_dir(ctx.out, CLASSIFIER, NUMPY),
                  layout.run_dir(ctx.out, TWO_TOWER, NUMPY), layout.parts_compare_dir(ctx.out)))
    for name, a, b, folder in pairs:
        _compare_pair(ctx, name, a, b, folder)


def _compare_pair(ctx: Context, name: str, a: Path, b: Path, folder: Path) -> None:
    """Compare two finished runs into ``folder`` as the ledger step ``name``, stamped by both runs' files."""
    from doodlelab.files.atomic import sha256_file
    from doodlelab.studies.compare import compare_runs

    stamp = {str(p.relative_to(ctx.out)): sha256_file(p)
             for run in (a, b) for p in (run / METRICS, run / HISTORY)}
    complete = all((folder / n).is_file() for n in layout.COMPARE_FILES)
    ctx.ledger.step(name, stamp, complete, lambda: compare_runs(a, b, folder), derived=True)


# The activations of the activation study, each with its own initialisation, and the sigmoid
# with ReLU's He initialisation (the mismatch an earlier report made), for the gradient picture.
INIT_VARIANTS = (("ReLU, He", {"activation": "relu", "init": "he_normal"}),
                 ("tanh, Glorot", {"activation": "tanh", "init": "glorot_normal"}),
                 ("sigmoid, Glorot", {"activation": "sigmoid", "init": "glorot_normal"}),
                 ("sigmoid, He", {"activation": "sigmoid", "init": "he_normal"}))


def _run_figures(ctx: Context, folder: Path) -> None:
    """Draw, per model kind, the curves of both backends and the test confusions of the numpy run."""
    from doodlelab.pipeline import evidence
    from doodlelab.runs.folder import RunFolder

    test = ctx.data.test
    for kind in KINDS:
        numpy_run, torch_run = (RunFolder(layout.run_dir(ctx.out, kind, b)) for b in (NUMPY, TORCH))
        cfg = numpy_run.settings
        evidence.curves({"NumPy": numpy_run.history, "PyTorch": torch_run.history},
                        evidence.objective_label(kind, cfg), folder / evidence.curves_file(kind))
        probs, labels = numpy_run.predictions
        evidence.confusions(test.x, labels, probs, test.classes, folder / evidence.confusions_file(kind))
        if numpy_run.history[0].keys() >= {"diag_term_" + cfg.two_tower.loss}:  # an objective of terms
            evidence.objective_terms(numpy_run.history, evidence.objective_label(kind, cfg), cfg,
                                     folder / evidence.TERMS, n_classes=len(test.classes))


def figures_step(ctx: Context) -> None:
    """Draw the report's figures into figures/: curves, terms, confusions, first layer, embeddings,
    gradient norms at initialisation (pipeline.evidence)."""
    from doodlelab.files.atomic import sha256_file
    from doodlelab.pipeline import evidence
    from doodlelab.runs.folder import PREDICTIONS, RunFolder
    from doodlelab.studies.layer_gradients import init_gradients
    from doodlelab.training.figures import plot_embeddings, plot_first_layer

    folder = layout.figures_dir(ctx.out)
    runs = [layout.run_dir(ctx.out, kind, backend) for kind, backend in layout.RUNS]
    stamp = {"runs": {str(p.relative_to(ctx.out) / f): sha256_file(p / f)
                      for p in runs for f in (WEIGHTS, HISTORY, PREDICTIONS)},
             "variants": [list(v) for v in INIT_VARIANTS], "seeds": list(INIT_SEEDS)}

    def work() -> None:
        plot_first_layer(RunFolder(runs[0]).weights["0.weight"], folder)
        task = RunFolder(layout.run_dir(ctx.out, EMBEDDING_KIND, NUMPY)).load_task()
        test = ctx.data.test
        plot_embeddings(task.embed(test.x), test.y, task.class_embeddings(), test.classes, folder)
        _run_figures(ctx, folder)
        train, first = ctx.data.train, ctx.data.train_idx[: ctx.cfg.train.batch_size]
        cfg = ctx.final[KINDS[0]]
        rows = init_gradients(cfg, train.x[first], train.y[first], INIT_VARIANTS, INIT_SEEDS)
        evidence.init_gradients(rows, folder / evidence.INIT_GRADIENTS)

    complete = all((folder / name).is_file() for name in evidence.report_figures())
    ctx.ledger.step("figures", stamp, complete, work, derived=True)


def report_step(ctx: Context) -> None:
    """Record the timings and commands, then compile report/report.pdf and report.html."""
    from doodlelab.pipeline.report import build_report
    from doodlelab.pipeline.report.settings import unset_fields_note

    manifest = ctx.ledger.manifest
    manifest["commands"] = commands(ctx)
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    manifest["cpu_seconds"] = round(sum(u.ru_utime + u.ru_stime for u in usage), 1)
    manifest["wall_seconds"] = round(time.perf_counter() - ctx.started, 1)
    manifest["finished"] = now()
    ctx.ledger.save()  # the report reads pipeline.json: it must hold this call's numbers
    tick = time.perf_counter()
    built = build_report(ctx.out, ctx.report_fields)
    manifest["this_invocation"]["report"] = "ran"
    manifest["report_seconds"] = round(time.perf_counter() - tick, 2)
    manifest["claims"] = {"checked": len(built.claims), "failed": [c["id"] for c in built.failed]}
    ctx.ledger.save()
    ctx.log(f"report: {built.pdf} and {built.html}; {len(built.claims)} checked claims, "
            f"{len(built.failed)} not supported by these results")
    if (note := unset_fields_note(ctx.report_fields)) is not None:
        ctx.log(note)



STEPS: tuple[Callable[[Context], None], ...] = (data_step, jobs_step, compare_step, figures_step,
                                               report_step)


def commands(ctx: Context) -> list[str]:
    """Return the CLI commands equivalent to this pipeline, step by step."""
    from doodlelab.pipeline.stages import GRADCHECK_STEPS

    data, out = str(ctx.data_dir), str(ctx.out)
    sets = "".join(f" --set '{s}'" for s in ctx.settings)
    lines = [f"doodlelab run --data {data} --out {out}" + (" --quick" if ctx.quick else "")
             + "".join(f" --set '{s}'" for s in ctx.settings[len(QUICK_SETTINGS) if ctx.quick else 0:]),
             "# which does, step by step: every study (one setting, seeds paired) ..."]
    for entry in ctx.ledger.manifest.get("studies", []):
        seeds = ",".join(map(str, entry["seeds"]))
        lines.append(f"doodlelab sweep --model {entry['kind']} --data {data} --seeds {seeds}{sets} "
                     f"--set train.epochs={entry['epochs']} --out {out}/sweep/{entry['name']} "
                     f"--grid <each of the {len(entry['settings'])} settings>  # {entry['name']}")
    lines.append("# ... then the final runs, with each deciding study's pick:")
    final = ctx.ledger.manifest.get("final", {})
    for kind, backend in layout.RUNS:
        picks = "".join(f" --set '{c['key']}={json.dumps(c['now'], separators=(',', ':'))}'"
                        for c in final.get(kind, {}).get("changes", []))
        lines.append(f"doodlelab train {kind} --backend {backend} --data {data} "
                     f"--out {layout.run_dir(ctx.out, kind, backend)}{sets}{picks}")
    picks = "".join(f" --set '{c['key']}={json.dumps(c['now'], separators=(',', ':'))}'"
                    for c in final.get(KINDS[-1], {}).get("changes", []))
    lines.append(f"doodlelab gradcheck --model all --data {data} --steps {GRADCHECK_STEPS} "
                 f"--json {out}/{layout.GRADCHECK}{sets}{picks}")
    for kind in KINDS:
        lines.append(f"doodlelab compare {layout.run_dir(ctx.out, kind, NUMPY)} "
                     f"{layout.run_dir(ctx.out, kind, TORCH)} --out {layout.compare_dir(ctx.out, kind)}")
    lines.append(f"doodlelab compare {layout.run_dir(ctx.out, CLASSIFIER, NUMPY)} "
                 f"{layout.run_dir(ctx.out, TWO_TOWER, NUMPY)} --out {layout.parts_compare_dir(ctx.out)}")
    lines.append(f"doodlelab report {out}")
    return lines


def run_all(data: str | Path | None, out: str | Path = DEFAULT_OUT, *, quick: bool = False,
            overwrite: bool = False, progress: bool | None = None, overrides: Sequence[str] = (),
            log: Callable[[str], None] | None = None, workers: int | None = None,
            config: Path | None = None) -> Path:
    """Run every step (see the module docstring) and build the report; return ``out``.

    ``overrides`` are ``section.key=value`` settings (as ``--set``) applied to every run,
    the gradient check and the studies after the ``quick`` ones (``report.*`` ones fill
    the report's page 1). Raises UserError on bad input or results made with other settings.
    """
    with FolderLock(out):  # one `doodlelab run` (or `report`) per results folder at a time
        ctx = _context(data, Path(out), quick, overwrite, progress, list(overrides), log, workers, config)
        for step in STEPS:
            step(ctx)
    return ctx.out


def _refuse_other_settings(out: Path, cfg: Any, overwrite: bool) -> None:
    """UserError if ``out`` holds the results of other settings and ``overwrite`` is not given.

    The final runs take the studies' picks, so they are known only once the studies are
    decided; a folder made with other settings is refused here, before any work starts.
    """
    old = layout.read_json(out / layout.MANIFEST)
    if overwrite or not isinstance(old, dict) or "config" not in old:
        return
    if old["config"] != json.loads(json.dumps(cfg.to_dict())):
        raise UserError(f"{out}: these results were made with other settings; pass --overwrite to redo "
                        "them or choose another --out")


def _context(data: Any, out: Path, quick: bool, overwrite: bool, progress: bool | None,
             overrides: list[str], log: Callable[[str], None] | None, workers: int | None,
             config: Path | None) -> Context:
    """Check the settings and the folders (before anything is written); return the Context."""
    from doodlelab.config import load_config
    from doodlelab.data.course import resolve_data_dir
    from doodlelab.pipeline.report.settings import report_fields, run_settings

    settings = [*(QUICK_SETTINGS if quick else ()), *run_settings(overrides)]
    cfg = load_config(config, settings)  # a bad --set fails before anything runs
    fields = report_fields(config, overrides)
    data_dir = resolve_data_dir(data)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder; choose another path")
    if workers is not None and workers < 1:
        raise UserError(f"--jobs must be at least 1 (got {workers})")
    workers = workers or default_jobs()
    from doodlelab.runs.train_command import git_state
    try:
        plan = plan_for(cfg, quick)
    except ValueError as exc:
        raise UserError(f"the main job's studies do not fit these settings: {exc}") from None
    from doodlelab import __version__

    header = {"doodlelab": __version__, "quick": quick, "settings": settings, "config": cfg.to_dict(),
              "data_dir": str(data_dir.resolve()), "out": str(out.resolve()), "git": git_state(),
              "python": sys.version.split()[0], "jobs": workers,
              "study": {"train_images": STUDY_TRAIN_IMAGES},
              "report": fields}
    _refuse_other_settings(out, cfg, overwrite)
    ledger = Ledger.open(out, overwrite, header, log or (lambda _line: None))
    out.mkdir(parents=True, exist_ok=True)
    return Context(cfg, settings, data_dir, out, quick, workers, progress, ledger, fields, plan,
                   time.perf_counter())
