"""Compile the report of a results folder: ``report/report.pdf`` and a self-contained ``report/report.html``.

The report is the Typst template in ``template/`` (``report.typ`` and the files it
includes), which reads the results folder itself with ``json()``, ``csv()`` and
``image()``; every number is the file's number by construction. Python only checks
that the folder is complete, copies the template next to the results
(``report/*.typ``, so ``typst compile --root RESULTS RESULTS/report/report.typ``
rebuilds it by hand), lists the files the template may show (``report/inputs.json``:
Typst cannot list a folder) and calls the compiler twice. Typst's HTML export writes
math as MathML and images as ``data:`` URIs, so the HTML needs no other file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from doodlelab.errors import UserError
from doodlelab.files.atomic import write_bytes, write_json
from doodlelab.kinds import KINDS
from doodlelab.pipeline import layout
from doodlelab.studies.sweep import SUMMARY_CSV

TEMPLATE_FILES = ("report.typ", "lib.typ", "part1.typ", "part2.typ", "closing.typ", "refs.yml")
SHOWN_SUFFIXES = (".png",)
REPORT_DIR, INPUTS = "report", "inputs.json"  # the report's folder in a results folder; the files it may show
FORMATS = ("pdf", "html")  # what Typst compiles the template to, in this order


def report_files(root: Path) -> tuple[Path, Path]:
    """Return the paths of the report of results folder ``root``: (HTML, PDF)."""
    folder = Path(root) / REPORT_DIR
    return folder / "report.html", folder / "report.pdf"


def required_files(root: Path) -> list[Path]:
    """Return the files without which the report cannot be written (the four runs, gradcheck, ...)."""
    from doodlelab.runs.folder import CONFIG, ENV, HISTORY, METRICS

    runs = [layout.run_dir(root, kind, backend) / name for kind, backend in layout.RUNS
            for name in (METRICS, CONFIG, ENV, HISTORY)]
    compare = [layout.compare_dir(root, kind) / layout.COMPARE_FILES[0] for kind in KINDS]
    return [root / layout.MANIFEST, layout.data_dir(root) / layout.DATA_JSON, *runs, root / layout.GRADCHECK,
            *compare]


def gather(root: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Return what the template is told: page-1 fields, the studies that exist, every picture's path."""
    manifest = layout.read_json(root / layout.MANIFEST) or {}
    sweeps = [s for s in manifest.get("sweeps", [])
              if (layout.sweep_dir(root, s["name"]) / SUMMARY_CSV).is_file()]
    files = sorted("/" + p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.suffix in SHOWN_SUFFIXES and p.is_file()
                   and p.relative_to(root).parts[0] != REPORT_DIR)
    return {"fields": {k: fields.get(k) for k in ("author", "student_number", "code_url")},
            "sweeps": sweeps, "files": files}


def build_report(results_dir: str | Path, fields: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``report/report.html`` and ``report/report.pdf`` under ``results_dir``; return (html, pdf).

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
    out = {}
    for fmt in FORMATS:
        try:
            out[fmt] = typst.compile(str(main), root=str(root), format=fmt)
        except typst.TypstError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"{main}: the report does not compile ({first})") from None
    return write_bytes(html_path, out["html"]), write_bytes(pdf_path, out["pdf"])
