"""CI's own rules: ruff is clean, and `.ci/run` stops with one line when a system part is missing.

`.ci/run` is run from a copy in a scratch checkout, with a PATH of stubs: ``ldconfig`` lists
libcairo2 or not, ``chromium`` is there or not, and ``apt-get`` fails (it records what it was
asked for), so nothing is installed or removed on this machine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CI_RUN = REPO / ".ci" / "run"


def test_ruff_finds_nothing_to_fix():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "src", "tests", "benchmarks"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _stub(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def _run_ci(tmp_path: Path, *, cairo: bool, chromium: bool) -> tuple[subprocess.CompletedProcess, Path]:
    """Run a copy of .ci/run with stubbed system tools; return what it did and the apt-get record."""
    checkout = tmp_path / "checkout"
    (checkout / ".ci").mkdir(parents=True)
    shutil.copy2(CI_RUN, checkout / ".ci" / "run")
    stubs, asked = tmp_path / "bin", tmp_path / "apt-get.args"
    stubs.mkdir()
    for tool in ("bash", "dirname", "grep"):  # the real ones, and nothing else of the system
        (stubs / tool).symlink_to(shutil.which(tool))
    (stubs / "python3").symlink_to(Path(sys.executable).resolve())  # an interpreter that has venv
    libcairo = "\tlibcairo.so.2 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcairo.so.2"
    _stub(stubs, "ldconfig", f"echo '{libcairo}'" if cairo else "echo '0 libs found in cache'")
    _stub(stubs, "apt-get", f'echo "$@" >> {asked}\nexit 100')
    if chromium:
        _stub(stubs, "chromium", "exit 0")
    done = subprocess.run([str(stubs / "bash"), str(checkout / ".ci" / "run")], env={"PATH": str(stubs)},
                          capture_output=True, text=True, timeout=60)
    return done, asked


@pytest.mark.parametrize("cairo, chromium, named", [
    (False, True, ["libcairo2"]), (True, False, ["chromium"]), (False, False, ["libcairo2", "chromium"])])
def test_a_missing_system_part_fails_ci_with_one_line_naming_it(tmp_path, cairo, chromium, named):
    done, asked = _run_ci(tmp_path, cairo=cairo, chromium=chromium)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("CI: missing"), done.stderr
    for part in named:
        assert part in done.stderr and part in asked.read_text()  # asked for, then named
    for part in {"libcairo2", "chromium"} - set(named):
        assert part not in done.stderr
    assert not (tmp_path / "checkout" / ".venv").exists()  # stopped before installing anything


def test_with_every_system_part_ci_goes_on_to_the_data(tmp_path):
    done, asked = _run_ci(tmp_path, cairo=True, chromium=True)
    assert done.returncode == 1 and not asked.exists()  # nothing to install
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("CI: real data not found at "), done.stderr
