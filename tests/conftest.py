"""Shared fixtures: tiny course folders built in code, the real data when available, and the rules
that keep a run of the suite honest.

- **Parts a test needs** (PyTorch, cairo, Chromium, GloVe, the demo's web stack, the real data):
  a test asks for one with :func:`need_module` or :func:`missing`. Where the part is absent the
  test skips, saying what to install; where ``$DOODLELAB_REQUIRE`` names the part (CI names them
  all) it fails instead, so a green CI means every test ran.
- **Randomness**: hypothesis draws fresh examples on a laptop and the same ones under CI
  (``$CI`` set: the ``ci`` profile is derandomised); a test's own random choice comes from
  :func:`test_seed`, which is fixed under CI, fresh otherwise, and printed when the test fails.
- **Time**: every test has a limit (``timeout`` in pyproject.toml; tests marked ``slow`` get
  :data:`SLOW_TIMEOUT`), so a hang fails one test instead of stalling the run.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import secrets
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import numpy as np
import pytest
from hypothesis import Phase, settings

from tests.quickdraw_server import start_server, stop_server

pytest_plugins = ["pytester"]  # tests/test_suite_rules.py runs small suites of its own

# Timing deadlines make property tests flaky on a loaded 2-core machine; correctness
# is what they check, speed lives in benchmarks/.
settings.register_profile("doodlelab", deadline=None)
# CI: the same examples on every run (a failure there is replayable), no example database.
settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True)
# Under mutation testing (mutmut sets MUTANT_UNDER_TEST; docs/testing.md) every property
# test runs a few examples: a mutant is judged by hundreds of short test runs on 2 cores.
# No shrinking there either: a failing example fails the mutant at once.
settings.register_profile("mutation", deadline=None, max_examples=4, database=None,
                          phases=[Phase.explicit, Phase.generate])
settings.load_profile("mutation" if "MUTANT_UNDER_TEST" in os.environ
                      else "ci" if os.environ.get("CI") else "doodlelab")
if "MUTANT_UNDER_TEST" in os.environ:
    # mutmut forks a child per mutant and kills one that runs too long. tqdm's default lock
    # is a semaphore shared across fork: a child killed while holding it would leave every
    # later child waiting on it (a cascade of false "timeouts"). A thread lock is not shared,
    # and without tqdm's monitor thread no other thread can hold it when mutmut forks.
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    tqdm.monitor_interval = 0


def examples(n: int) -> int:
    """Return ``n`` hypothesis examples, capped by the active profile (4 under mutmut)."""
    return min(n, settings().max_examples)


# -- parts a test needs ------------------------------------------------------------------------

REQUIRE_ENV = "DOODLELAB_REQUIRE"
PARTS = {  # part -> how to get it
    "torch": "pip install -e '.[torch]'",
    "cairo": "pip install -e '.[render]' and the system's libcairo2 (Debian: apt-get install libcairo2)",
    "chromium": "pip install -e '.[dev]' (Playwright) and the system's Chromium "
                "(Debian: apt-get install chromium)",
    "glove": "pip install -e '.[glove]' (Python 3.11 or later)",
    "demo": "pip install -e '.[demo]'",
    "notebooks": "pip install -e '.[notebooks]' (the Jupyter kernel and the notebook executor)",
    "docs": "pip install -e '.[dev]' (mkdocs and mkdocs-material)",
    "data": "set $DOODLELAB_DATA and $DOODLELAB_SHARED_DATA to the data folders",
}


def required_parts() -> set[str]:
    """Return the parts ``$DOODLELAB_REQUIRE`` names (comma-separated, or ``all``)."""
    names = {n.strip() for n in os.environ.get(REQUIRE_ENV, "").split(",") if n.strip()}
    if "all" in names:
        return set(PARTS)
    unknown = names - set(PARTS)
    if unknown:
        raise pytest.UsageError(f"${REQUIRE_ENV} names unknown parts {sorted(unknown)}; "
                                f"known: {', '.join(PARTS)}, all")
    return names


def missing(part: str, why: str) -> NoReturn:
    """Skip the calling test (or module) for lack of ``part``; fail when ``$DOODLELAB_REQUIRE`` names it."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}")
    if part in required_parts():
        pytest.fail(f"{part} is required (${REQUIRE_ENV}) but missing: {why}", pytrace=False)
    pytest.skip(f"{part} is missing: {why} ({PARTS[part]})", allow_module_level=True)


def need_module(part: str, name: str) -> ModuleType:
    """Return the imported module ``name``, which belongs to ``part``; else :func:`missing`."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(part, f"cannot import {name} ({exc})")


def pytest_configure(config: pytest.Config) -> None:
    required_parts()  # a misspelt part stops the run before any test
    os.environ.setdefault(SEED_ENV, str(SESSION_SEED))  # pytest-xdist's workers draw with the same seed


def pytest_report_header(config: pytest.Config) -> list[str]:
    required = ", ".join(sorted(required_parts())) or "none (a missing part skips)"
    return [f"doodlelab: required parts (${REQUIRE_ENV}): {required}; test seed (${SEED_ENV}) {SESSION_SEED}"]


# -- time limits -------------------------------------------------------------------------------

SLOW_TIMEOUT = 1200  # seconds for a test marked slow (two real-data trainings on a loaded machine)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


# -- a test's own random choices ---------------------------------------------------------------

SEED_ENV = "DOODLELAB_TEST_SEED"
SESSION_SEED = int(os.environ.get(SEED_ENV) or (0 if os.environ.get("CI") else secrets.randbelow(2**32)))


@pytest.fixture
def test_seed(request: pytest.FixtureRequest) -> int:
    """Return this test's seed: from ``$DOODLELAB_TEST_SEED`` (0 under CI, else fresh) and the test's id.

    A failing test prints the session seed; setting ``$DOODLELAB_TEST_SEED`` to it replays the choice.
    """
    digest = hashlib.sha256(f"{SESSION_SEED}:{request.node.nodeid}".encode()).digest()
    request.node.user_properties.append(("test_seed", SESSION_SEED))
    return int.from_bytes(digest[:4], "little")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.failed and any(name == "test_seed" for name, _ in item.user_properties):
        report.sections.append(("test seed", f"replay this test's random choices with "
                                             f"{SEED_ENV}={SESSION_SEED}"))
    return report


class ScriptedDraws:
    """A stand-in for ``numpy.random.Generator`` that hands out draws written in a test, in order.

    It lets a test build the expected result of a documented sampling rule by hand (which
    units dropout keeps, which class the triplet takes as negative) instead of repeating the
    implementation's own calls to a real Generator.
    """

    def __init__(self, uniforms: list[float] = (), integers: list[int] = ()) -> None:
        self.uniforms, self.ints = list(uniforms), list(integers)

    def random(self, size: int | tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
        """Return the next draws in [0, 1), row-major in ``size``."""
        n = int(np.prod(size))
        assert len(self.uniforms) >= n, f"the test scripted {len(self.uniforms)} uniform draws, {n} asked"
        out, self.uniforms = self.uniforms[:n], self.uniforms[n:]
        return np.array(out, dtype=dtype).reshape(size)

    def integers(self, low: int, high: int, size: int | tuple[int, ...]) -> np.ndarray:
        """Return the next integer draws; each must lie in [low, high) as the caller asked."""
        n = int(np.prod(size))
        assert len(self.ints) >= n, f"the test scripted {len(self.ints)} integer draws, {n} asked"
        out, self.ints = self.ints[:n], self.ints[n:]
        assert all(low <= v < high for v in out), f"scripted {out} outside the asked [{low}, {high})"
        return np.array(out, dtype=np.int64).reshape(size)


REAL_DATA_ENV = "DOODLELAB_DATA"
FIVE_CLASSES = ("rabbit", "yoga", "hand", "snowman", "motorbike")  # the course's order, written out


def write_tiny_glove(path: Path, words: tuple[str, ...] = FIVE_CLASSES, dim: int = 6, seed: int = 0,
                     digits: int = 5) -> Path:
    """Write a GloVe text file of ``words`` with seeded random ``dim``-d vectors; return its path."""
    rng = np.random.default_rng(seed)
    path.write_text("".join(f"{w} " + " ".join(f"{v:.{digits}f}" for v in rng.normal(size=dim)) + "\n"
                            for w in words))
    return path


def make_k_class_folder(path: Path, names: list[str], n_train: int = 70, n_test: int = 28) -> Path:
    """Write a learnable folder of len(names) classes (a band per class) with its classes.json."""
    rng = np.random.default_rng(0)
    path.mkdir(parents=True)
    k = len(names)
    for split, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % k
        x = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, 2 + 3 * c : 5 + 3 * c, 4:24] = 255
        np.save(path / f"{split}_images.npy", x)
        np.save(path / f"{split}_labels.npy", y.astype(np.int64))
    (path / "classes.json").write_text(json.dumps({"classes": names}))
    return path


def make_course_folder(
    path: Path, n_train: int = 60, n_test: int = 25, seed: int = 0, flat: bool = False
) -> Path:
    """Write a learnable synthetic course folder: each class lights up its own band."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 5
        rng.shuffle(y)
        x = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(y):
            x[i, 4 + 4 * c : 8 + 4 * c, 6:22] = 255  # class-specific horizontal band
        if flat:
            x = x.reshape(n, 784)
        np.save(path / f"{split}_images.npy", x)
        np.save(path / f"{split}_labels.npy", y.astype(np.int64))
    return path


@pytest.fixture
def course_dir(tmp_path: Path) -> Path:
    """A small synthetic folder in the course layout."""
    return make_course_folder(tmp_path / "course")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real Quick, Draw! folder named by $DOODLELAB_DATA (the part "data")."""
    value = os.environ.get(REAL_DATA_ENV)
    if not value or not Path(value).is_dir():
        missing("data", f"${REAL_DATA_ENV} does not name the real data folder")
    return Path(value)


SHARED_DATA_ENV = "DOODLELAB_SHARED_DATA"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The shared data folder (strokes/, fixtures/) named by $DOODLELAB_SHARED_DATA (the part "data")."""
    value = os.environ.get(SHARED_DATA_ENV)
    if not value or not Path(value).is_dir():
        missing("data", f"${SHARED_DATA_ENV} does not name the shared data folder")
    return Path(value)


def need_cairo() -> None:
    """Stop the calling test module where cairo (cairocffi + the system's libcairo2) is missing."""
    try:
        import cairocffi  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: the wrapper is there, libcairo2 is not
        missing("cairo", str(exc))


@pytest.fixture
def local_only(monkeypatch):
    """No proxy and no base-URL override from the environment: requests go straight to 127.0.0.1."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                "DOODLELAB_QUICKDRAW_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture
def server(local_only):
    """A threaded fake of the official bucket on 127.0.0.1 (ephemeral port)."""
    state, httpd, thread = start_server()
    yield state
    stop_server(httpd, thread)
