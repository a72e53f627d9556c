"""The resume engine of ``doodlelab run``: which steps to redo, and a pool that runs the heavy ones.

A step's *stamp* is the JSON of everything its outputs depend on (configuration, data
checksums, grid, seed, input hashes). :class:`Ledger` keeps the stamps in
``pipeline.json``: a step whose outputs are complete with the same stamp is reused; an
incomplete one is redone; a complete one made with another stamp is a UserError unless
``overwrite`` (or the step is *derived*, a cheap function of other outputs, simply
redone). Every decision is taken before any work starts, so a refused call leaves the
folder exactly as it was.

:func:`run_stages` runs the heavy jobs in worker processes (``spawn``), each with one
BLAS and torch thread (``DOODLELAB_THREADS=1``): jobs come in :class:`Stage` s, a stage's jobs
listed only once the stages it waits for have ended, and a free worker always takes the first
ready job of the earliest stage.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from doodlelab.errors import UserError
from doodlelab.files.atomic import write_json
from doodlelab.files.terminal import show_progress
from doodlelab.pipeline.layout import MANIFEST, read_json


def now() -> str:
    """Return the current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def normalise(stamp: Any) -> Any:
    """Return ``stamp`` in the form it takes once written to and read from JSON."""
    return json.loads(json.dumps(stamp))


@dataclass
class Ledger:
    """The manifest of one results folder (``pipeline.json``): stamps, timings, what this call did."""

    out: Path
    overwrite: bool
    manifest: dict[str, Any]
    log: Callable[[str], None]
    old_steps: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, out: Path, overwrite: bool, header: dict[str, Any], log: Callable[[str], None]) -> Ledger:
        """Return the ledger of ``out``, carrying over the steps an earlier call recorded."""
        old = read_json(Path(out) / MANIFEST)
        steps = old.get("steps", {}) if isinstance(old, dict) else {}
        manifest = {**header, "started": now(), "steps": dict(steps), "this_invocation": {}, "step_order": []}
        return cls(Path(out), overwrite, manifest, log, dict(steps))

    def save(self) -> None:
        """Write ``pipeline.json`` atomically."""
        write_json(self.out / MANIFEST, self.manifest)

    def needs_work(self, name: str, stamp: Any, complete: bool, *, same: bool | None = None,
                   derived: bool = False) -> bool:
        """Return whether step ``name`` must run; UserError if complete with other settings.

        ``same`` (if given) says whether the outputs were made with these settings, read
        from the outputs themselves; else the stamp recorded in pipeline.json decides.
        """
        recorded = self.old_steps.get(name, {}).get("stamp")
        why = "other settings"
        if same is None:
            same = recorded == normalise(stamp)
            if recorded is None:
                why = f"settings that {MANIFEST} does not record"
        self.manifest["step_order"].append(name)
        if complete and not self.overwrite:
            if same:
                self.manifest["this_invocation"][name] = "reused"
                return False
            if not derived:
                raise UserError(f"{self.out}: {name} was made with {why}; pass --overwrite to redo it "
                                "or choose another --out")
        return True

    def done(self, name: str, stamp: Any, seconds: float) -> None:
        """Record that step ``name`` ran with ``stamp`` in ``seconds`` and save the manifest."""
        self.manifest["steps"][name] = {"stamp": normalise(stamp), "seconds": round(seconds, 2),
                                        "finished": now()}
        self.manifest["this_invocation"][name] = "ran"
        self.save()

    def step(self, name: str, stamp: Any, complete: bool, work: Callable[[], Any], **how: Any) -> bool:
        """Run ``work`` unless :meth:`needs_work` says the outputs can be reused; return whether it ran."""
        if not self.needs_work(name, stamp, complete, **how):
            self.log(f"{name}: complete, reused")
            return False
        tick = time.perf_counter()
        work()
        self.done(name, stamp, time.perf_counter() - tick)
        self.log(f"{name}: done in {time.perf_counter() - tick:.1f} s")
        return True


@dataclass(frozen=True)
class Job:
    """One independent unit of heavy work: ``fn(*args)`` run in a worker process."""

    name: str
    stamp: Any
    fn: Callable[..., Any]
    args: tuple[Any, ...]


def one_thread_worker() -> None:
    """Initialise a worker process: one BLAS thread, one torch thread (training on one core each)."""
    for var in ("DOODLELAB_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def default_jobs() -> int:
    """Return the default worker count: one per usable CPU."""
    from doodlelab.tasks.threads import usable_cpus

    return usable_cpus()


def _timed(fn: Callable[..., Any], args: tuple[Any, ...]) -> float:
    """Run ``fn(*args)`` and return its wall seconds (in whichever process runs it)."""
    tick = time.perf_counter()
    fn(*args)
    return time.perf_counter() - tick


@dataclass(frozen=True)
class Stage:
    """Jobs that can only be listed once other stages have ended (their outputs decide the settings).

    ``make`` runs in this process when every stage named in ``after`` has ended and returns the
    stage's jobs (it may write files first, e.g. decide the studies its jobs depend on); the
    stage ends when all of them have. Stages listed earlier go first: their ready jobs are
    handed to a free worker before those of stages listed later, whenever they became ready.
    """

    name: str
    make: Callable[[], Sequence[Job]]
    after: tuple[str, ...] = ()


def run_stages(stages: Sequence[Stage], workers: int, ledger: Ledger, progress: bool | None = None) -> None:
    """Run every job of ``stages`` on ``workers`` processes (in this one if 1), one pool for them all.

    A free worker always takes the first ready job of the earliest stage, so no worker waits at
    a stage's end while another stage has work. Each job is recorded in ``ledger`` as it ends;
    the first failure cancels what has not started and is raised.
    """
    from tqdm.auto import tqdm

    names = [s.name for s in stages]
    unknown = {a for s in stages for a in s.after} - set(names)
    if len(set(names)) != len(names) or unknown:
        raise ValueError(f"stages must have distinct names and wait only for listed stages: {names}")
    bar = tqdm(total=0, desc="runs", unit="run", disable=not show_progress(progress))
    schedule = _Schedule(stages, bar)
    try:
        if workers <= 1:
            while (job := schedule.next_job()) is not None:
                _finish(ledger, job, _timed(job.fn, job.args), bar)
                schedule.ended(job)
        else:
            _run_in_pool(schedule, workers, ledger, bar)
    finally:
        bar.close()
    if not schedule.done():  # a stage waits for one that cannot end: a bug in the list of stages
        raise RuntimeError(f"stages left waiting: {[s.name for s in schedule.waiting]}")


class _Schedule:
    """Which stages are open, which jobs are ready, in stage order, and which are still running."""

    def __init__(self, stages: Sequence[Stage], bar: Any) -> None:
        self.stages, self.bar = list(stages), bar
        self.waiting = list(stages)  # not yet made
        self.ready: list[tuple[int, Job]] = []  # (stage index, job), sorted by stage index
        self.left: dict[str, int] = {}  # jobs not yet ended, per made stage
        self.stage_of: dict[str, str] = {}  # job name -> its stage's name
        self._open()

    def _open(self) -> None:
        """Make every waiting stage whose stages ``after`` have ended, in list order, until none is left."""
        opened = True
        while opened:
            opened = False
            for stage in list(self.waiting):
                if all(self.left.get(a) == 0 for a in stage.after):
                    self.waiting.remove(stage)
                    jobs = list(stage.make())
                    self.left[stage.name] = len(jobs)
                    index = self.stages.index(stage)
                    self.ready += [(index, job) for job in jobs]
                    self.stage_of |= {job.name: stage.name for job in jobs}
                    self.ready.sort(key=lambda item: item[0])  # stable: a stage's jobs keep their order
                    self.bar.total += len(jobs)
                    self.bar.refresh()
                    opened = True

    def next_job(self) -> Job | None:
        """Return the first ready job (None when nothing is ready)."""
        return self.ready.pop(0)[1] if self.ready else None

    def ended(self, job: Job) -> None:
        """Record that ``job`` ended; open the stages that were waiting only for its stage."""
        self.left[self.stage_of[job.name]] -= 1
        self._open()

    def done(self) -> bool:
        return not self.waiting and not self.ready


def _run_in_pool(schedule: _Schedule, workers: int, ledger: Ledger, bar: Any) -> None:
    """Feed ``schedule``'s jobs to ``workers`` spawned processes, a new one whenever one ends."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")  # no forked BLAS thread pools
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=one_thread_worker) as pool:
        running: dict[Future, Job] = {}

        def fill() -> None:
            while len(running) < workers and (job := schedule.next_job()) is not None:
                running[pool.submit(_timed, job.fn, job.args)] = job

        fill()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                if future.exception() is not None:  # stop at the first failure: nothing else starts
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise future.exception()  # type: ignore[misc]
                _finish(ledger, job, future.result(), bar)
                schedule.ended(job)
            fill()


def _finish(ledger: Ledger, job: Job, seconds: float, bar: Any) -> None:
    ledger.done(job.name, job.stamp, seconds)
    ledger.log(f"{job.name}: done in {seconds:.1f} s")
    bar.update(1)
