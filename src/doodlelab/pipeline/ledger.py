"""The resume engine of ``doodlelab run``: which steps to redo, and a pool that runs the heavy ones.

A step's *stamp* is the JSON of everything its outputs depend on (configuration, data
checksums, grid, seed, input hashes). :class:`Ledger` keeps the stamps in
``pipeline.json``: a step whose outputs are complete with the same stamp is reused; an
incomplete one is redone; a complete one made with another stamp is a UserError unless
``overwrite`` (or the step is *derived*, a cheap function of other outputs, simply
redone). Every decision is taken before any work starts, so a refused call leaves the
folder exactly as it was.

:func:`run_jobs` runs independent jobs in worker processes (``spawn``), each with one
BLAS and torch thread (``DOODLELAB_THREADS=1``), longest first as given.
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


def run_jobs(jobs: Sequence[Job], workers: int, ledger: Ledger, progress: bool | None = None) -> None:
    """Run ``jobs`` on ``workers`` processes (in this one if 1), recording each in ``ledger`` as it ends."""
    from tqdm.auto import tqdm

    if not jobs:
        return
    progress = show_progress(progress)
    bar = tqdm(total=len(jobs), desc="runs", unit="run", disable=not progress)
    if workers <= 1:
        for job in jobs:
            _finish(ledger, job, _timed(job.fn, job.args), bar)
        bar.close()
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")  # no forked BLAS thread pools
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=one_thread_worker) as pool:
        futures = {pool.submit(_timed, job.fn, job.args): job for job in jobs}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                if future.exception() is not None:  # stop at the first failure: nothing else starts
                    pool.shutdown(wait=True, cancel_futures=True)
                    bar.close()
                    raise future.exception()  # type: ignore[misc]
                _finish(ledger, futures[future], future.result(), bar)
    bar.close()


def _finish(ledger: Ledger, job: Job, seconds: float, bar: Any) -> None:
    ledger.done(job.name, job.stamp, seconds)
    ledger.log(f"{job.name}: done in {seconds:.1f} s")
    bar.update(1)
