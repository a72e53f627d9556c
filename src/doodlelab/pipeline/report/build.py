"""Compile the report of a results folder: ``report/report.pdf`` and a self-contained ``report/report.html``.

The report is the Typst template in ``template/`` (``report.typ`` and the files it
includes), which reads the results folder itself with ``json()``, ``csv()`` and
``image()``; every number is the file's number by construction. Python only checks
that the folder is complete, copies the template next to the results
(``report/*.typ``, so ``typst compile --root RESULTS RESULTS/report/report.typ``
rebuilds it by hand), lists the files the template may show (``report/inputs.json``:
Typst cannot list a folder) and calls the compiler twice. Typst's HTML export writes
math as MathML and images as ``data:`` URIs, so the HTML needs no other file.

The prose is written by a person; every sentence that depends on a measurement is a
*checked claim* (``#claim(...)`` in the template): the template evaluates its condition on
the results files, marks the sentence visibly when the run contradicts it, and leaves a
``<claim>`` metadata element. :func:`build_report` queries them into ``report/claims.json``
(id, statement, whether it holds) so ``doodlelab report`` can list the failed ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from doodlelab.errors import UserError
from doodlelab.files.atomic import write_bytes, write_json
from doodlelab.kinds import KINDS
from doodlelab.pipeline import layout

TEMPLATE_FILES = ("report.typ", "lib.typ", "part1.typ", "part2.typ", "closing.typ", "refs.yml")
SHOWN_SUFFIXES = (".png", ".svg")
REPORT_DIR, INPUTS = "report", "inputs.json"  # the report's folder in a results folder; the files it may show
CLAIMS = "claims.json"  # under report/: every checked claim of the text and whether it holds
FORMATS = ("pdf", "html")  # what Typst compiles the template to, in this order


@dataclass(frozen=True)
class BuiltReport:
    """The files of a compiled report and its checked claims."""

    html: Path
    pdf: Path
    claims: tuple[dict[str, Any], ...]  # {"id", "statement", "holds": true / false / null (not applicable)}

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Return the claims the results contradict (not those without the evidence to judge)."""
        return [c for c in self.claims if c["holds"] is False]


def report_files(root: Path) -> tuple[Path, Path]:
    """Return the paths of the report of results folder ``root``: (HTML, PDF)."""
    folder = Path(root) / REPORT_DIR
    return folder / "report.html", folder / "report.pdf"


def required_files(root: Path) -> list[Path]:
    """Return the files without which the report cannot be written (the four runs, gradcheck, ...)."""
    from doodlelab.runs.folder import CONFIG, ENV, HISTORY, METRICS

    runs = [layout.run_dir(root, kind, backend) / name for kind, backend in layout.RUNS
            for name in (METRICS, CONFIG, ENV, HISTORY)]
    folders = [*(layout.compare_dir(root, kind) for kind in KINDS), layout.parts_compare_dir(root)]
    compare = [folder / layout.COMPARE_FILES[0] for folder in folders]
    return [root / layout.MANIFEST, layout.data_dir(root) / layout.DATA_JSON, *runs, root / layout.GRADCHECK,
            *compare]


def gather(root: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Return what the template is told: page-1 fields, the studies that exist, every picture's path, and
    the statistics it cannot compute itself (:mod:`doodlelab.pipeline.report.statistics`: the tie width,
    the cross-study pairs, what the test-time shifts add to the starting configuration) and how many
    training images a run's training curve is measured on (``training.fit.TRAIN_CURVE_IMAGES``)."""
    from doodlelab.pipeline.report.statistics import SHIFT_GAIN_STUDY, cross_pairs, shift_gain, tie_width
    from doodlelab.pipeline.summaries import SUMMARY
    from doodlelab.training.fit import TRAIN_CURVE_IMAGES

    manifest = layout.read_json(root / layout.MANIFEST) or {}
    starting = {s["name"]: s.get("default") for s in manifest.get("studies", [])}  # each study's setting
    studies = [s["name"] for s in manifest.get("studies", [])
               if (layout.sweep_dir(root, s["name"]) / SUMMARY).is_file()]
    files = sorted("/" + p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.suffix in SHOWN_SUFFIXES and p.is_file()
                   and p.relative_to(root).parts[0] != REPORT_DIR)
    files += ["/" + name for name in (layout.DRIFT,) if (root / name).is_file()]
    return {"fields": {k: fields.get(k) for k in ("author", "student_number", "code_url")},
            "studies": studies, "files": files, "tie_width": tie_width(manifest.get("studies", [])),
            "cross_pairs": cross_pairs(root), "train_curve_images": TRAIN_CURVE_IMAGES,
            "shift_gain": shift_gain(root, SHIFT_GAIN_STUDY, starting.get(SHIFT_GAIN_STUDY))}


def _compile(typst: Any, source: Path, root: Path, fmt: str) -> bytes:
    from doodlelab.training.figures import font_dir

    try:  # the SVG figures' text is in matplotlib's own DejaVu Sans: the compiler gets that font too
        return typst.compile(str(source), root=str(root), format=fmt, font_paths=[str(font_dir())],
                             sys_inputs={"target": fmt})
    except typst.TypstError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = re.search(r"┌─ (?:.*/)?([^/\s]+:\d+):\d+", str(getattr(exc, "diagnostic", "")))
        at = f" at {where.group(1)}" if where else ""
        raise UserError(f"{source}: the report does not compile ({first}{at})") from None


def _claims(typst: Any, source: Path, root: Path) -> tuple[dict[str, Any], ...]:
    """Return the ``<claim>`` metadata of the compiled template, in the order of the text."""
    from doodlelab.training.figures import font_dir

    found = json.loads(typst.query(str(source), "<claim>", field="value", root=str(root),
                                   font_paths=[str(font_dir())]))
    ids = [c["id"] for c in found]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise UserError(f"{source}: claim ids used twice: {', '.join(twice)}")
    return tuple({"id": c["id"], "statement": c["statement"], "holds": c["holds"]} for c in found)


def build_report(results_dir: str | Path, fields: dict[str, Any] | None = None) -> BuiltReport:
    """Write ``report/report.html``, ``report/report.pdf`` and ``report/claims.json`` under ``results_dir``.

    ``fields`` are the page-1 author, student number and code link (None: the page says
    they are missing). UserError if the folder is not a complete results folder.
    """
    import typst

    root = Path(results_dir)
    if not root.is_dir():
        raise UserError(f"{root} is not a results folder; make one with doodlelab run --out {root}")
    for path in required_files(root):
        if not path.is_file():
            raise UserError(f"{path} is missing: this results folder is incomplete; run "
                            f"doodlelab run --out {root} to finish it")
    if fields is None:
        fields = (layout.read_json(root / layout.MANIFEST) or {}).get("report") or {}
    html_path, pdf_path = report_files(root)
    folder = html_path.parent
    template = resources.files("doodlelab.pipeline.report") / "template"
    for name in TEMPLATE_FILES:
        write_bytes(folder / name, (template / name).read_bytes())
    write_json(folder / INPUTS, gather(root, fields))
    main = folder / TEMPLATE_FILES[0]
    out = {fmt: _compile(typst, main, root, fmt) for fmt in FORMATS}
    claims = _claims(typst, main, root)
    write_json(folder / CLAIMS, {"claims": list(claims), "failed": sum(c["holds"] is False for c in claims)})
    return BuiltReport(write_bytes(html_path, out["html"]), write_bytes(pdf_path, out["pdf"]), claims)
