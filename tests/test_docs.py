"""The documentation: the site builds with no warning; the README stays short and its links resolve.

``mkdocs build --strict`` fails on a broken link or anchor between pages, a page left out
of the navigation, or a settings table the hook cannot generate (docs/hooks.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import need_module

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
README_MAX_LINES = 150
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    need_module("docs", "mkdocs")
    need_module("docs", "material")
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(REPO / "mkdocs.yml"), "--site-dir", str(site)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    configuration = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "two_tower.margin" in configuration and "settings: generated" not in configuration
    assert (site / "search" / "search_index.json").is_file()


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES
    assert lines[2:6] == ["```", 'python3 -m venv .venv && .venv/bin/pip install -e ".[all]" && '
                          ".venv/bin/doodlelab run", ".venv/bin/python -m pytest", "```"]


def test_the_readme_links_to_files_that_exist() -> None:
    targets = [t for t in LINK.findall(README.read_text(encoding="utf-8")) if "://" not in t]
    assert targets and [t for t in targets if not (REPO / t).exists()] == []
