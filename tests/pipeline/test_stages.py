"""The pool of ``doodlelab run``: stages of jobs, each listed once the stages it waits for have ended,
and a free worker always taking the first ready job of the earliest stage."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from doodlelab.pipeline.ledger import Job, Ledger, Stage, run_stages


def _note(log: str, name: str, seconds: float = 0.0, fail: bool = False) -> None:
    """A job: append "start name pid", sleep, append "end name pid" (one write each, O_APPEND)."""
    with open(log, "a") as fh:
        fh.write(f"start {name} {os.getpid()}\n")
    time.sleep(seconds)
    if fail:
        raise ValueError(f"{name} failed")
    with open(log, "a") as fh:
        fh.write(f"end {name} {os.getpid()}\n")


def _events(log: Path) -> list[tuple[str, str, int]]:
    lines = (line.split() for line in log.read_text().splitlines())
    return [(what, name, int(pid)) for what, name, pid in lines]


def _jobs(log: Path, *names: str, seconds: float = 0.0, fail: str = "") -> list[Job]:
    return [Job(n, {"job": n}, _note, (str(log), n, seconds, n == fail)) for n in names]


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger.open(tmp_path, False, {}, lambda line: None)


def test_a_waiting_stage_is_made_when_its_stages_end_and_its_jobs_go_before_later_stages(tmp_path):
    log, made = tmp_path / "log", []

    def decide():
        made.append([name for what, name, _ in _events(log) if what == "end"])
        return _jobs(log, "b1", "b2")

    ledger = _ledger(tmp_path)
    run_stages([Stage("a", lambda: _jobs(log, "a1", "a2")),
                Stage("b", decide, after=("a",)),
                Stage("c", lambda: _jobs(log, "c1", "c2")),
                Stage("d", lambda: [], after=("a",)),  # no jobs: ends as it opens
                Stage("e", lambda: _jobs(log, "e1"), after=("d", "c"))], 1, ledger, progress=False)
    assert made == [["a1", "a2"]]  # b was listed once both of a's jobs had ended, not before
    starts = [name for what, name, _ in _events(log) if what == "start"]
    assert starts == ["a1", "a2", "b1", "b2", "c1", "c2", "e1"]
    assert set(ledger.manifest["steps"]) == {"a1", "a2", "b1", "b2", "c1", "c2", "e1"}


def test_on_two_workers_a_stage_made_late_goes_before_the_earlier_ready_jobs_of_later_stages(tmp_path):
    log = tmp_path / "log"
    run_stages([Stage("a", lambda: _jobs(log, "a1", seconds=0.05)),
                Stage("b", lambda: _jobs(log, "b1", seconds=0.05), after=("a",)),
                Stage("c", lambda: _jobs(log, "c1", "c2", "c3", seconds=0.5))], 2, _ledger(tmp_path),
               progress=False)
    events = _events(log)
    starts = [name for what, name, _ in events if what == "start"]
    assert sorted(starts) == ["a1", "b1", "c1", "c2", "c3"]  # each job ran once
    order = [(what, name) for what, name, _ in events]
    assert order.index(("end", "a1")) < order.index(("start", "b1"))  # b waited for a
    assert starts.index("b1") < starts.index("c2")  # b1 was ready after c2, and went first
    assert len({pid for _, _, pid in events}) == 2  # both workers trained


def test_the_first_failure_is_raised_and_stages_waiting_for_it_are_never_made(tmp_path):
    log, made = tmp_path / "log", []
    with pytest.raises(ValueError, match="^a2 failed$"):
        run_stages([Stage("a", lambda: _jobs(log, "a1", "a2", "a3", fail="a2")),
                    Stage("b", lambda: made.append("b") or [], after=("a",))], 1, _ledger(tmp_path),
                   progress=False)
    assert made == [] and [n for w, n, _ in _events(log) if w == "start"] == ["a1", "a2"]


def test_stages_must_wait_only_for_listed_stages_with_distinct_names(tmp_path):
    with pytest.raises(ValueError, match="wait only for listed stages"):
        run_stages([Stage("a", lambda: [], after=("z",))], 1, _ledger(tmp_path), progress=False)
    with pytest.raises(ValueError, match="distinct names"):
        run_stages([Stage("a", lambda: []), Stage("a", lambda: [])], 1, _ledger(tmp_path), progress=False)


def _main_job(tmp_path: Path):
    """The main job's context as far as its stages need it: the default plan and its rows."""
    from types import SimpleNamespace

    from doodlelab.config import Config
    from doodlelab.pipeline.plan import plan_for
    from doodlelab.pipeline.rows import study_rows

    cfg = Config()
    plan = plan_for(cfg)
    rows = study_rows(cfg, plan, {"train_images.npy": "0" * 64}, tmp_path)
    return SimpleNamespace(cfg=cfg, plan=plan, rows=rows)


def test_the_final_runs_wait_for_the_deciding_rows_and_the_rows_only_a_check_needs_come_last(tmp_path):
    from doodlelab.kinds import KINDS, TWO_TOWER
    from doodlelab.pipeline.stages import job_stages, study_rows_of

    ctx = _main_job(tmp_path)
    checks = {s.name for s in ctx.plan.studies if not s.decides}
    assert checks and {s.kind for s in ctx.plan.studies if not s.decides} == {TWO_TOWER}
    for kind in KINDS:
        deciding, only_checks = study_rows_of(ctx, kind, True), study_rows_of(ctx, kind, False)
        mine = [r for r in ctx.rows if r.kind == kind]
        assert sorted(map(id, deciding + only_checks)) == sorted(map(id, mine))  # a partition
        assert {r.study for r in only_checks} <= checks
        assert not {r.key for r in only_checks} & {r.key for r in deciding}  # a shared row decides
    # The image tower check's configured setting is a row of the deciding studies too; its other is not.
    tower = {r.setting.name: r for r in ctx.rows if r.study == "image_tower" and r.seed == 0}
    assert tower["512-256"] in study_rows_of(ctx, TWO_TOWER, True)
    assert tower["256"] in study_rows_of(ctx, TWO_TOWER, False)

    stages = {s.name: s for s in job_stages(ctx)}
    names = list(stages)
    assert stages["two_tower runs"].after == ("classifier studies", "two_tower studies")
    assert stages["classifier runs"].after == ("classifier studies",)
    assert names.index("two_tower checks") > names.index("two_tower runs")  # preferred least
    assert set(stages["checks written"].after) == {"classifier studies", "two_tower studies",
                                                   "classifier checks", "two_tower checks"}
