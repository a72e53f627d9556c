"""The C heap setting of doodlelab.cli.heap: a freed large array goes back to the system."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")

# Frees a 30 MB array (glibc then raises its mmap threshold to 30 MB), then makes, touches and
# frees a 20 MB one; prints how much anonymous memory that second array left behind, in MB.
SCRIPT = """
import sys
import numpy as np
from doodlelab.cli.heap import return_large_blocks
if sys.argv[1] == "fixed":
    assert return_large_blocks()
def anon():
    return int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("RssAnon:"))) / 1024
big = np.ones(30_000_000 // 8); del big
before = anon()
block = np.ones(20_000_000 // 8); del block
print(anon() - before)
"""


def _left_behind(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return float(done.stdout)


def test_a_freed_large_array_is_given_back_only_with_the_setting():
    assert _left_behind("default") > 15  # glibc's own rule keeps the 20 MB in the heap
    assert _left_behind("fixed") < 2


def test_every_command_makes_the_setting_before_its_work(monkeypatch, tmp_path, capsys):
    import doodlelab.cli.commands as cli

    calls = []
    monkeypatch.setattr(cli, "return_large_blocks", lambda: calls.append(1) or True)
    assert cli.main(["train", "classifier", "--offline", "--data", str(tmp_path / "none")]) == 2
    assert calls == [1] and "error" in capsys.readouterr().err
