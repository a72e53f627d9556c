"""The suite's own rules (tests/conftest.py), each run on a small suite of its own with pytester.

A missing part skips on a laptop and fails where $DOODLELAB_REQUIRE names it; a failing test
prints the seed that replays its random choices; a slow test gets the longer time limit.
"""

from __future__ import annotations

import re

import pytest

from tests import conftest
from tests.conftest import REQUIRE_ENV, SEED_ENV

ABSENT = "doodlelab_no_such_module"  # a module no machine has

PART_PROBE = f"""
from tests.conftest import need_module
need_module("torch", "{ABSENT}")

def test_never_runs():
    pass
"""


def test_a_missing_part_skips_where_it_is_not_required(pytester, monkeypatch):
    monkeypatch.setenv(REQUIRE_ENV, "cairo,data")
    pytester.makepyfile(test_probe=PART_PROBE)
    result = pytester.runpytest_inprocess("-rs")
    result.assert_outcomes(skipped=1)
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED or result.ret == 0
    result.stdout.fnmatch_lines([f"*torch is missing: cannot import {ABSENT}*pip install -e '.[[]torch]'*"])


@pytest.mark.parametrize("required", ["torch", "cairo, torch", "all"])
def test_a_missing_part_fails_the_run_where_it_is_required(pytester, monkeypatch, required):
    monkeypatch.setenv(REQUIRE_ENV, required)
    pytester.makepyfile(test_probe=PART_PROBE)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(errors=1)
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error stops the run
    result.stdout.fnmatch_lines([f"*torch is required (${REQUIRE_ENV}) but missing: cannot import {ABSENT}*"])


def test_a_part_missing_inside_a_test_fails_that_test(pytester, monkeypatch):
    monkeypatch.setenv(REQUIRE_ENV, "data")
    pytester.makepyfile(test_probe="""
        from tests.conftest import missing

        def test_wants_data():
            missing("data", "no folder here")

        def test_wants_glove():
            missing("glove", "no package here")
    """)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*_ test_wants_data _*",
                                 f"data is required (${REQUIRE_ENV}) but missing: no folder here"])


def test_an_unknown_part_name_stops_the_run_before_any_test(pytester, monkeypatch):
    monkeypatch.setenv(REQUIRE_ENV, "torch,chromuim")
    pytester.makeconftest("from tests.conftest import pytest_configure")
    pytester.makepyfile(test_probe="def test_x():\n    pass\n")
    result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown parts [[]'chromuim'[]]*"])


def test_a_failing_test_prints_the_seed_that_replays_it(pytester, monkeypatch):
    monkeypatch.setattr(conftest, "SESSION_SEED", 1234)  # as $DOODLELAB_TEST_SEED=1234 sets it
    pytester.makeconftest("from tests.conftest import pytest_runtest_makereport, test_seed")
    pytester.makepyfile(test_probe="""
        import random

        def test_draws_and_fails(test_seed):
            assert random.Random(test_seed).randint(0, 9) > 99

        def test_fails_without_a_seed():
            assert False
    """)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert out.count(f"{SEED_ENV}=") == 1  # only the test that drew from the seed
    result.stdout.fnmatch_lines([f"*replay this test's random choices with {SEED_ENV}=1234*"])


def test_the_seed_is_the_same_for_a_test_in_every_run_with_one_session_seed(pytester, monkeypatch):
    pytester.makeconftest("from tests.conftest import test_seed")
    pytester.makepyfile(test_probe="""
        def test_one(test_seed):
            print("SEED", test_seed)

        def test_two(test_seed):
            print("SEED", test_seed)
    """)
    runs = []
    for session_seed in (7, 7, 8):
        monkeypatch.setattr(conftest, "SESSION_SEED", session_seed)
        result = pytester.runpytest_inprocess("-s")
        result.assert_outcomes(passed=2)
        runs.append(re.findall(r"SEED (\d+)", result.stdout.str()))
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert len(set(runs[0])) == 2  # each test its own seed


def test_a_slow_test_gets_the_longer_time_limit(pytester):
    pytester.makeconftest("from tests.conftest import pytest_collection_modifyitems")
    pytester.makepyfile(test_probe="""
        import pytest

        from tests.conftest import SLOW_TIMEOUT

        @pytest.mark.slow
        def test_slow(request):
            assert request.node.get_closest_marker("timeout").args == (SLOW_TIMEOUT,)

        @pytest.mark.slow
        @pytest.mark.timeout(7)
        def test_slow_with_its_own_limit(request):
            assert request.node.get_closest_marker("timeout").args == (7,)

        def test_fast(request):
            assert request.node.get_closest_marker("timeout") is None  # pyproject's limit applies
    """)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=3)
