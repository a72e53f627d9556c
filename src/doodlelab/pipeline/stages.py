"""The heavy work of ``doodlelab run`` as stages of jobs, all fed to one pool of workers.

The final models are trained with the studies' picks (:mod:`doodlelab.pipeline.choices`), so
a kind's final runs wait for the studies that decide them; nothing else waits:

1. the classifier's deciding studies (one job per setting, the longest first);
2. once they have ended: those studies are written and decided, then the classifier's final runs;
3. the two-tower model's deciding studies (they train around the configuration, not the picks);
4. once stages 1 and 3 have ended: the two-tower studies are decided, then its final runs (with
   the classifier's picks too), the gradient check and the numpy-vs-torch drift (of the
   classifier's final settings: it could start at stage 2, but as the last jobs the two short
   ones fill the time one worker would wait for the other's longer final run);
5. the rows that only a check needs (a study with ``decides=False``, e.g. the word-vector
   controls), which no final run waits for: listed last, so a free worker takes them only when
   no earlier stage has a ready job (while the other worker ends a stage's last row, or beside
   a final run), and the checks' folders are written once they and the deciding rows have ended.

A free worker takes the first ready job of the earliest stage
(:func:`doodlelab.pipeline.ledger.run_stages`), so the classifier's final runs start as soon as
they can, beside the two-tower studies, and no worker waits at a stage's end while another
has work. Every job is reused when its outputs are complete with the same stamp, so an
interrupted job resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doodlelab.kinds import KINDS, Kind
from doodlelab.pipeline import layout, units
from doodlelab.pipeline.choices import final_config
from doodlelab.pipeline.ledger import Job, Stage, run_stages
from doodlelab.pipeline.rows import STUDY_TRAIN_IMAGES, StudyRow, setting_jobs, study_entry, study_rows

GRADCHECK_STEPS = 5  # optimizer steps whose parameters are compared after the first gradients
DRIFT_EPOCHS = 5  # epochs of the numpy-vs-torch drift study (studies.drift), float32 and float64


def _run_jobs(ctx: Any, which: Kind) -> list[Job]:
    """Return the jobs of ``which``'s final runs that are missing or unfinished (refusing other settings)."""
    cfg, out = ctx.final[which].to_dict(), []
    for kind, backend in (r for r in layout.RUNS if r[0] == which):
        folder = layout.run_dir(ctx.out, kind, backend)
        stamp = {"task": kind, "backend": backend, "config": cfg, "checksums": ctx.checksums}
        finished = layout.run_finished(folder)
        same = finished and layout.same_run(folder, kind, backend, cfg, ctx.checksums)
        if ctx.ledger.needs_work(f"runs/{layout.run_name(kind, backend)}", stamp, finished, same=same):
            out.append(Job(f"runs/{layout.run_name(kind, backend)}", stamp, units.train_run,
                           (str(ctx.data_dir), str(folder), cfg, backend, kind)))
    return out


def _gradcheck_jobs(ctx: Any) -> list[Job]:
    """Return the gradient-check job unless gradcheck.json is complete with these settings."""
    path = ctx.out / layout.GRADCHECK
    cfg = ctx.final[KINDS[-1]].to_dict()  # the last kind's final settings hold every pick
    stamp = {"config": cfg, "checksums": ctx.checksums, "steps": GRADCHECK_STEPS, "models": list(KINDS)}
    report = layout.read_json(path)
    complete = isinstance(report, dict) and all(m in report for m in KINDS)
    if not ctx.ledger.needs_work("gradcheck", stamp, complete):
        return []
    return [Job("gradcheck", stamp, units.gradcheck, (str(ctx.data_dir), str(path), cfg, GRADCHECK_STEPS,
                                                     list(KINDS)))]


def _drift_jobs(ctx: Any) -> list[Job]:
    """Return the numpy-vs-torch drift job unless drift.json is complete with these settings."""
    path = ctx.out / layout.DRIFT
    cfg = ctx.final[KINDS[0]].to_dict()  # the classifier's final settings
    stamp = {"config": cfg, "checksums": ctx.checksums, "epochs": DRIFT_EPOCHS,
             "train_images": STUDY_TRAIN_IMAGES}
    done = layout.read_json(path)
    complete = isinstance(done, dict) and all(k in done for k in ("float32", "float64"))
    if not ctx.ledger.needs_work("drift", stamp, complete):
        return []
    return [Job("drift", stamp, units.drift, (str(ctx.data_dir), str(path), cfg, DRIFT_EPOCHS,
                                              STUDY_TRAIN_IMAGES))]


def _trained(row: StudyRow) -> bool:
    done = layout.read_json(row.path)
    return isinstance(done, dict) and done.get("stamp") == json.loads(json.dumps(row.stamp))


def study_rows_of(ctx: Any, kind: Kind, deciding: bool) -> list[StudyRow]:
    """Return ``kind``'s rows that its deciding studies need (``deciding``), or the rows that only
    its checks (studies with ``decides=False``) need: a row both need is a deciding one."""
    decides = {s.name for s in ctx.plan.studies if s.decides}
    mine = [r for r in ctx.rows if r.kind == kind]
    needed = {r.key for r in mine if r.study in decides}
    return [r for r in mine if (r.key in needed) == deciding]


def _setting_jobs(ctx: Any, rows: list[StudyRow]) -> list[Job]:
    """Return one job per setting of ``rows`` with seeds not yet trained (shared rows once)."""
    out = []
    for job in setting_jobs(rows):
        todo = [r for r in job.rows if not _trained(r)]
        if not todo:
            continue
        stamp = {"keys": [r.key for r in todo]}
        ctx.ledger.needs_work(job.name, stamp, False)
        out.append(Job(job.name, stamp, units.study_setting,
                       (str(ctx.data_dir), job.kind, job.config, [r.seed for r in todo],
                        [str(r.path) for r in todo], [r.stamp for r in todo], STUDY_TRAIN_IMAGES)))
    return out


def _studies(ctx: Any, kind: Kind, deciding: bool) -> None:
    """Write the folder of every deciding study of ``kind`` (or of every check of it) and record each
    study's pick in ``ctx.chosen``."""
    from doodlelab.pipeline.summaries import DECISION, FILES, write_study

    for study in (s for s in ctx.plan.studies if s.kind == kind and s.decides == deciding):
        entry = study_entry(ctx.cfg, study)
        mine = [r for r in ctx.rows if r.study == study.name]
        folder = layout.sweep_dir(ctx.out, study.name)

        def work(mine: list[StudyRow] = mine, folder: Path = folder, entry: dict[str, Any] = entry) -> None:
            write_study(folder, entry, [(r.setting.name, r.seed, layout.read_json(r.path)) for r in mine])

        complete = all((folder / f).is_file() for f in FILES)
        ctx.ledger.step(f"sweep/{study.name}", [entry, [r.key for r in mine]], complete, work, derived=True)
        ctx.chosen[study.name] = layout.read_json(folder / DECISION)["chosen"]


def _finalise(ctx: Any, kind: Kind) -> None:
    """Set the final configuration of ``kind`` from the picks so far, and record what changed."""
    kinds = KINDS[: KINDS.index(kind) + 1]  # the two-tower model takes the classifier's picks too
    cfg, changes = final_config(ctx.cfg, ctx.plan, ctx.chosen, kinds)
    ctx.final[kind] = cfg
    ctx.ledger.manifest.setdefault("final", {})[kind] = {
        "config": cfg.to_dict(), "changes": [c.__dict__ for c in changes]}
    for c in changes:
        ctx.log(f"{kind}: study {c.study} changes {c.key} from {c.was} to {c.now}")


def _decided(ctx: Any, kind: Kind, jobs: Callable[[], list[Job]]) -> Callable[[], list[Job]]:
    """Return a stage's ``make``: decide ``kind``'s deciding studies, set its final settings, then
    list ``jobs()``."""
    def make() -> list[Job]:
        _studies(ctx, kind, deciding=True)
        _finalise(ctx, kind)
        return _logged(ctx, f"{kind} runs", jobs())
    return make


def _logged(ctx: Any, what: str, todo: list[Job]) -> list[Job]:
    ctx.log(f"{what}: {len(todo)} jobs on {ctx.workers} worker(s)")
    return todo


def _rows_stage(ctx: Any, name: str, kind: Kind, deciding: bool) -> Stage:
    """Return the stage of ``kind``'s deciding rows (or of its check-only rows), named ``name``."""
    return Stage(name, lambda: _logged(ctx, name, _setting_jobs(ctx, study_rows_of(ctx, kind, deciding))))


def _checks_written(ctx: Any) -> list[Job]:
    """Write every check's folder (a stage's ``make`` that lists no jobs)."""
    for kind in KINDS:
        _studies(ctx, kind, deciding=False)
    return []


def job_stages(ctx: Any) -> list[Stage]:
    """Return the stages of the module docstring, in the order a free worker prefers them."""
    first, second = KINDS
    studies = [f"{kind} studies" for kind in KINDS]
    checks = [f"{kind} checks" for kind in KINDS]

    def last_jobs() -> list[Job]:
        return [*_run_jobs(ctx, second), *_gradcheck_jobs(ctx), *_drift_jobs(ctx)]

    return [
        _rows_stage(ctx, studies[0], first, deciding=True),
        Stage(f"{first} runs", _decided(ctx, first, lambda: _run_jobs(ctx, first)), after=(studies[0],)),
        _rows_stage(ctx, studies[1], second, deciding=True),
        Stage(f"{second} runs", _decided(ctx, second, last_jobs), after=tuple(studies)),
        *(_rows_stage(ctx, name, kind, deciding=False) for name, kind in zip(checks, KINDS)),
        Stage("checks written", lambda: _checks_written(ctx), after=(*studies, *checks)),
    ]


def train_and_decide(ctx: Any) -> None:
    """Run the stages of the module docstring."""
    ctx.rows = study_rows(ctx.cfg, ctx.plan, ctx.checksums, ctx.out)
    # Every study's entry in the plan's order, whichever stage writes its folder.
    ctx.ledger.manifest["studies"] = [study_entry(ctx.cfg, study) for study in ctx.plan.studies]
    run_stages(job_stages(ctx), ctx.workers, ctx.ledger, ctx.progress)
