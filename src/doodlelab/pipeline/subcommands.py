"""``doodlelab run`` and ``doodlelab report``: their parsers and what they print.

The main job itself is :mod:`doodlelab.pipeline.steps`; the report, :mod:`doodlelab.pipeline.report`.
A claim of the report that the results do not support is printed as one line; ``--strict``
makes it exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from doodlelab.config import add_config_args
from doodlelab.data.official.autofetch import add_fetching_data_args
from doodlelab.files.lock import FolderLock
from doodlelab.pipeline import layout
from doodlelab.pipeline.steps import DEFAULT_OUT, run_all


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
    for p in (run, rep):
        p.add_argument("--strict", action="store_true",
                       help="exit with status 1 when a claim of the report is not supported by the results")


def command(args: argparse.Namespace) -> int:
    """Run ``doodlelab run`` or ``doodlelab report``; return 0, or 1 if the gradient check failed."""
    if args.command == "report":
        from doodlelab.pipeline.report import build_report
        from doodlelab.pipeline.report.settings import report_fields, unset_fields_note

        manifest = layout.read_json(Path(args.results_dir) / layout.MANIFEST) or {}
        fields = report_fields(args.config, args.overrides, base=manifest.get("report"))
        with FolderLock(args.results_dir):
            built = build_report(args.results_dir, fields)
        print(f"report -> {built.pdf}, {built.html}")
        if (note := unset_fields_note(fields)) is not None:
            print(f"doodlelab report: {note}", file=sys.stderr)
        return _claims_status(built.failed, args.strict)
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
    from doodlelab.pipeline.report.build import CLAIMS

    claims = layout.read_json(html.parent / CLAIMS) or {}
    return _claims_status([c for c in claims.get("claims", []) if c["holds"] is False], args.strict)


def _claims_status(failed: list[dict[str, Any]], strict: bool) -> int:
    """Print one line per claim of the report that these results do not support; return 1 if ``strict``."""
    for c in failed:
        print(f"doodlelab: claim {c['id']} not supported by these results: {c['statement']}", file=sys.stderr)
    return 1 if failed and strict else 0
