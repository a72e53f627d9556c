"""doodlelab as a stranger gets it: a license, a citation file, and a wheel that works outside a checkout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pypdf
import pytest

import doodlelab

REPO = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _cff_field(name: str) -> str:
    match = re.search(rf"^{name}: \"?([^\"\n]+)\"?$", (REPO / "CITATION.cff").read_text(), re.M)
    assert match, f"CITATION.cff has no top-level {name}"
    return match.group(1)


def test_the_license_file_is_the_license_the_package_names():
    assert _project()["license"] == {"text": "MIT"}
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "WITHOUT WARRANTY OF ANY KIND" in text
    assert _cff_field("license") == "MIT"


def test_the_citation_file_cites_this_version_and_the_data_under_cc_by():
    assert _cff_field("cff-version") == "1.2.0"
    assert _cff_field("version") == _project()["version"] == doodlelab.__version__
    cff = (REPO / "CITATION.cff").read_text()
    assert "The Quick, Draw! Dataset" in cff and "license: CC-BY-4.0" in cff


def _fresh_venv(root: Path, wheel: Path) -> Path:
    """Return the python of a new venv holding only the wheel; the other dependencies are read
    from this venv's site-packages through a .pth line (whose own .pth files, the editable
    install of the checkout among them, are not processed)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                    "--no-index", "-q", str(wheel)], check=True, timeout=300, capture_output=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python


@pytest.mark.slow
def test_the_wheel_installed_outside_the_checkout_runs_the_quick_job_and_writes_the_report(
        tmp_path, real_data_dir):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
                   check=True, timeout=600, capture_output=True)
    (wheel,) = wheels.glob("doodlelab-*.whl")
    python = _fresh_venv(tmp_path / "venv", wheel)
    away = tmp_path / "elsewhere"  # no checkout here or above it
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run([str(python), "-c", "import doodlelab; print(doodlelab.__file__)"], cwd=away,
                           env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "venv"), where  # the wheel, not the checkout
    cli = tmp_path / "venv" / "bin" / "doodlelab"
    demo = subprocess.run([str(cli), "demo", "--help"], cwd=away, env=env, capture_output=True, text=True,
                          timeout=120)
    assert demo.returncode == 0 and "usage: doodlelab demo" in demo.stdout, demo.stderr
    done = subprocess.run([str(cli), "run", "--quick", "--data", str(real_data_dir), "--out", "results"],
                          cwd=away, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    results = away / "results"
    assert json.loads((results / "pipeline.json").read_text())["git"]["commit"] is None
    for name in ("report.pdf", "report.html"):
        assert (results / "report" / name).stat().st_size > 10_000
    first_page = pypdf.PdfReader(results / "report" / "report.pdf").pages[0].extract_text()
    assert f"doodlelab {doodlelab.__version__}" in first_page and "no git checkout" in first_page
