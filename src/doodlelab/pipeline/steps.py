"""``doodlelab run``: every experiment the report needs, as a list of resumable steps.

:data:`STEPS` runs top to bottom over one :class:`Context` (the data read once, the
settings, the :class:`~doodlelab.pipeline.ledger.Ledger` of ``pipeline.json``); the layout of
what they write is :mod:`doodlelab.pipeline.layout`. The heavy work (the four runs, the
gradient check, every study row) is a list of independent jobs run by
:func:`doodlelab.pipeline.ledger.run_jobs` in ``--jobs`` worker processes (default one per
usable CPU, each on one BLAS thread). A finished run or study row is reused on a
re-run; a run or gradient check made with other settings stops the job unless
``--overwrite``. Study rows are keyed by a hash of their settings, so rows shared by
several studies (the configuration itself) are trained once.

Studies train for ``STUDY_EPOCHS`` (not the configuration's epochs) with the seeds
``STUDY_SEEDS``, on the validation split only; the report says so.
``quick=True`` shrinks everything (2 epochs, tiny widths, two small studies) for tests.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doodlelab.config import add_config_args
from doodlelab.data.official.autofetch import add_fetching_data_args
from doodlelab.errors import UserError
from doodlelab.files.lock import FolderLock
from doodlelab.geometry import SHAPE
from doodlelab.kinds import CLASSIFIER, KINDS, NUMPY, TORCH, TWO_TOWER
from doodlelab.pipeline import layout, units
from doodlelab.pipeline.ledger import Job, Ledger, default_jobs, now, run_jobs
from doodlelab.pipeline.plan import sweeps_for
from doodlelab.pipeline.rows import STUDY_EPOCHS, STUDY_SEEDS, study_entry, study_points
from doodlelab.runs.folder import HISTORY, METRICS, WEIGHTS

GRADCHECK_STEPS = 5  # optimizer steps whose parameters are compared after the first gradients
GRADCHECK_MODELS = KINDS
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
    values: dict[str, Any] = field(default_factory=dict)  # train, test, checksums, studies

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
    ctx.values.update(train=train, test=test, checksums=checksums)
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


def _run_jobs(ctx: Context) -> list[Job]:
    """Return the jobs of the four runs that are missing or unfinished (refusing other settings)."""
    cfg, out = ctx.cfg.to_dict(), []
    for kind, backend in layout.RUNS:
        folder = layout.run_dir(ctx.out, kind, backend)
        stamp = {"task": kind, "backend": backend, "config": cfg, "checksums": ctx.values["checksums"]}
        finished = layout.run_finished(folder)
        same = finished and layout.same_run(folder, kind, backend, cfg, ctx.values["checksums"])
        if ctx.ledger.needs_work(f"runs/{layout.run_name(kind, backend)}", stamp, finished, same=same):
            out.append(Job(f"runs/{layout.run_name(kind, backend)}", stamp, units.train_run,
                           (str(ctx.data_dir), str(folder), cfg, backend, kind)))
    return out


def _gradcheck_jobs(ctx: Context) -> list[Job]:
    """Return the gradient-check job unless gradcheck.json is complete with these settings."""
    path = ctx.out / layout.GRADCHECK
    stamp = {"config": ctx.cfg.to_dict(), "checksums": ctx.values["checksums"], "steps": GRADCHECK_STEPS,
             "models": list(GRADCHECK_MODELS)}
    report = layout.read_json(path)
    complete = isinstance(report, dict) and all(m in report for m in GRADCHECK_MODELS)
    if not ctx.ledger.needs_work("gradcheck", stamp, complete):
        return []
    return [Job("gradcheck", stamp, units.gradcheck, (str(ctx.data_dir), str(path), ctx.cfg.to_dict(),
                                                     GRADCHECK_STEPS, list(GRADCHECK_MODELS)))]


def _point_jobs(ctx: Context) -> list[Job]:
    """Return one job per study row not yet trained (rows shared by several studies once)."""
    out, seen = [], set()
    for p in ctx.values["points"]:
        done = layout.read_json(p["path"])
        trained = isinstance(done, dict) and done.get("stamp") == json.loads(json.dumps(p["stamp"]))
        if p["key"] in seen or trained:
            continue
        seen.add(p["key"])
        ctx.ledger.needs_work(f"points/{p['key']}", {"key": p["key"]}, False)
        out.append(Job(f"points/{p['key']}", {"key": p["key"]}, units.study_row,
                       (str(ctx.data_dir), str(p["path"]), p["model"], p["settings"], p["config"],
                        p["seed"], p["stamp"])))
    return out


def jobs_step(ctx: Context) -> None:
    """Train the four runs, the gradient check and every study row, in parallel workers."""
    studies = sweeps_for(ctx.cfg, ctx.quick)
    ctx.values["points"] = study_points(ctx.cfg, studies, ctx.values["checksums"], ctx.out)
    todo = [*_run_jobs(ctx), *_gradcheck_jobs(ctx)]  # decided (and refused) before any work
    todo += _point_jobs(ctx)
    ctx.log(f"{len(todo)} jobs to run on {ctx.workers} worker(s)")
    run_jobs(todo, ctx.workers, ctx.ledger, ctx.progress)


def compare_step(ctx: Context) -> None:
    """numpy vs torch of each model (doodlelab compare); redone whenever either run changed."""
    from doodlelab.files.atomic import sha256_file
    from doodlelab.studies.compare import compare_runs

    for kind in KINDS:
        a, b = layout.run_dir(ctx.out, kind, NUMPY), layout.run_dir(ctx.out, kind, TORCH)
        folder = layout.compare_dir(ctx.out, kind)
        stamp = {str(p.relative_to(ctx.out)): sha256_file(p)
                 for run in (a, b) for p in (run / METRICS, run / HISTORY)}
        complete = all((folder / n).is_file() for n in layout.COMPARE_FILES)
        ctx.ledger.step(f"compare/{kind}", stamp, complete, lambda a=a, b=b, f=folder: compare_runs(a, b, f),
                        derived=True)


def studies_step(ctx: Context) -> None:
    """Gather every study's rows into its sweep folder (its CSVs and plots)."""
    from doodlelab.studies.sweep import label_of, write_sweep
    from doodlelab.training.figures import plot_history_panels, plot_study

    for study in sweeps_for(ctx.cfg, ctx.quick):
        name = study[0]
        mine = [p for p in ctx.values["points"] if p["study"] == name]
        folder = layout.sweep_dir(ctx.out, name)

        def work(mine: list[dict[str, Any]] = mine, folder: Path = folder) -> None:
            rows, histories = [], []
            for p in mine:  # a row shared with another study is labelled with this study's settings
                done, label = layout.read_json(p["path"]), label_of(p["settings"])
                scores = {k: v for k, v in done["row"].items() if k not in ("label", "seed") and "." not in k}
                settings = {k: label_of({k: v}).split("=", 1)[1] for k, v in p["settings"].items()}
                rows.append({"point": p["point"], "label": label, "seed": p["seed"], **settings, **scores})
                for h in done["history"]:
                    histories.append({"point": p["point"], "label": label,
                                      **{k: v for k, v in h.items() if k != "label"}})
            summary = write_sweep(folder, rows, histories)
            plot_study(summary, folder)
            plot_history_panels(histories, folder)  # the objective's terms, if it has several (two-tower)

        complete = all((folder / f).is_file() for f in layout.SWEEP_FILES)
        ctx.ledger.step(f"sweep/{name}", [p["key"] for p in mine], complete, work, derived=True)
    ctx.ledger.manifest["sweeps"] = [study_entry(ctx.cfg, study) for study in sweeps_for(ctx.cfg, ctx.quick)]


def figures_step(ctx: Context) -> None:
    """Draw the first layer's weights (classifier) and the test embeddings (two-tower) into figures/."""
    from doodlelab.files.atomic import sha256_file
    from doodlelab.runs.folder import RunFolder
    from doodlelab.training.figures import plot_embeddings, plot_first_layer, plot_history_panels

    clf = layout.run_dir(ctx.out, CLASSIFIER, NUMPY)
    tower = layout.run_dir(ctx.out, TWO_TOWER, NUMPY)
    folder = layout.figures_dir(ctx.out)
    stamp = {str(p.relative_to(ctx.out) / f): sha256_file(p / f)
             for p in (clf, tower, layout.run_dir(ctx.out, TWO_TOWER, TORCH))
             for f in (WEIGHTS, HISTORY)}

    def work() -> None:
        plot_first_layer(RunFolder(clf).weights["0.weight"], folder)
        task = RunFolder(tower).load_task()
        image, words = task.embed(ctx.values["test"].x), task.class_embeddings()
        plot_embeddings(image, ctx.values["test"].y, words, ctx.values["test"].classes, folder)
        histories = [{"label": backend, **row} for backend in (NUMPY, TORCH)
                     for row in RunFolder(layout.run_dir(ctx.out, TWO_TOWER, backend)).history]
        plot_history_panels(histories, folder, stem=f"{TWO_TOWER}_")

    pictures = ("first_layer", "embeddings", f"{TWO_TOWER}_terms")
    complete = all((folder / f"{name}.png").is_file() for name in pictures)
    ctx.ledger.step("figures", stamp, complete, work, derived=True)


def report_step(ctx: Context) -> None:
    """Record the timings and commands, then compile report/report.pdf and report.html."""
    from doodlelab.pipeline.report import build_report

    manifest = ctx.ledger.manifest
    manifest["commands"] = commands(ctx)
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    manifest["cpu_seconds"] = round(sum(u.ru_utime + u.ru_stime for u in usage), 1)
    manifest["wall_seconds"] = round(time.perf_counter() - ctx.values["tick"], 1)
    manifest["finished"] = now()
    ctx.ledger.save()  # the report reads pipeline.json: it must hold this call's numbers
    tick = time.perf_counter()
    html, pdf = build_report(ctx.out, ctx.report_fields)
    manifest["this_invocation"]["report"] = "ran"
    manifest["report_seconds"] = round(time.perf_counter() - tick, 2)
    ctx.ledger.save()
    ctx.log(f"report: {pdf} and {html}")


STEPS: tuple[Callable[[Context], None], ...] = (data_step, jobs_step, compare_step, studies_step,
                                               figures_step, report_step)


def commands(ctx: Context) -> list[str]:
    """Return the CLI commands equivalent to this pipeline, step by step."""
    data, out = str(ctx.data_dir), str(ctx.out)
    sets = "".join(f" --set '{s}'" for s in ctx.settings)
    lines = [f"doodlelab run --data {data} --out {out}" + (" --quick" if ctx.quick else "")
             + "".join(f" --set '{s}'" for s in ctx.settings[len(QUICK_SETTINGS) if ctx.quick else 0:]),
             "# which does, step by step:"]
    for kind, backend in layout.RUNS:
        lines.append(f"doodlelab train {kind} --backend {backend} --data {data} "
                     f"--out {layout.run_dir(ctx.out, kind, backend)}{sets}")
    lines.append(f"doodlelab gradcheck --model all --data {data} --steps {GRADCHECK_STEPS} "
                 f"--json {out}/{layout.GRADCHECK}{sets}")
    for kind in KINDS:
        lines.append(f"doodlelab compare {layout.run_dir(ctx.out, kind, NUMPY)} "
                     f"{layout.run_dir(ctx.out, kind, TORCH)} --out {layout.compare_dir(ctx.out, kind)}")
    for entry in ctx.ledger.manifest.get("sweeps", []):
        grids = "".join(f" --grid '{k}={json.dumps(v, separators=(',', ':'))}'"
                        for k, v in entry["grid"].items())
        lines.append(f"doodlelab sweep --model {entry['model']} --data {data} "
                     f"--seeds {','.join(map(str, entry['seeds']))} --out {out}/sweep/{entry['name']}{grids}"
                     f"{sets} --set train.epochs={entry['epochs']}")
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
    header = {"quick": quick, "settings": settings, "config": cfg.to_dict(),
              "data_dir": str(data_dir.resolve()), "out": str(out.resolve()), "git": git_state(),
              "python": sys.version.split()[0], "jobs": workers,
              "study": {"epochs": min(cfg.train.epochs, STUDY_EPOCHS), "seeds": list(STUDY_SEEDS)},
              "report": fields}
    ledger = Ledger.open(out, overwrite, header, log or (lambda _line: None))
    out.mkdir(parents=True, exist_ok=True)
    return Context(cfg, settings, data_dir, out, quick, workers, progress, ledger, fields,
                   {"tick": time.perf_counter()})


# -- command line ------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``report`` to the ``doodlelab`` subcommands (dispatch both to :func:`command`)."""
    run = subparsers.add_parser("run", help="every experiment and the report, resumable (results/)")
    add_fetching_data_args(run)
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                     help=f"results folder (default {DEFAULT_OUT}); a re-run resumes what is missing")
    run.add_argument("--quick", action="store_true", help="2 epochs, tiny models and studies (a smoke test)")
    run.add_argument("--overwrite", action="store_true",
                     help="redo every step even if its outputs are complete")
    run.add_argument("--jobs", type=int, default=None, metavar="N",
                     help="worker processes, one BLAS thread each (default: one per usable CPU)")
    rep = subparsers.add_parser("report", help="rebuild the report (PDF and HTML) from a results folder")
    for p in (run, rep):
        add_config_args(p, "settings file; its [report] table gives author, student_number, code_url",
                        "override a setting, e.g. --set train.epochs=50 or --set report.author='A. Name'")
    rep.add_argument("results_dir", type=Path, metavar="RESULTS_DIR")


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab run`` or ``doodlelab report``; return 0, or 1 if the gradient check failed."""
    if args.command == "report":
        from doodlelab.pipeline.report import build_report
        from doodlelab.pipeline.report.settings import report_fields

        manifest = layout.read_json(Path(args.results_dir) / layout.MANIFEST) or {}
        fields = report_fields(args.config, args.overrides, base=manifest.get("report"))
        with FolderLock(args.results_dir):
            pdf_html = build_report(args.results_dir, fields)
        print(f"report -> {pdf_html[1]}, {pdf_html[0]}")
        return 0
    from doodlelab.data.official.autofetch import data_dir_or_fetch

    data = data_dir_or_fetch(args.data, no_fetch=args.offline)
    out = run_all(data, args.out, quick=args.quick, overwrite=args.overwrite, overrides=args.overrides,
                  workers=args.jobs, config=args.config,
                  log=lambda line: print(f"doodlelab run: {line}", file=sys.stderr))
    report = layout.read_json(out / layout.GRADCHECK) or {}
    from doodlelab.pipeline.report.build import report_files

    html, pdf = report_files(out)
    print(f"results -> {out}; report -> {pdf}, {html}")
    if report.get("passed") is False:
        for problem in report.get("failures", []):
            print(f"doodlelab: gradcheck failed: {problem}", file=sys.stderr)
        return 1
    return 0
