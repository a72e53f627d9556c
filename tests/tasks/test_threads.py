"""The BLAS thread policy: the rule's numbers worked by hand, the override, and the limit it sets."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from doodlelab.errors import UserError
from doodlelab.tasks.threads import THREADS_ENV, blas_threads, matmul_threads, usable_cpus


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)


@pytest.mark.parametrize("rows, widths, cpus, expected", [
    (64, (784, 512, 5), 2, 1),  # 2 * 64 * 784 * 512 = 51.4 MFLOP: under 200 MFLOP, one thread
    (255, (784, 512, 5), 8, 1),  # 204.7 MFLOP // 200 MFLOP = 1
    (500, (784, 512, 5), 8, 2),  # 401.4 MFLOP: two threads' worth
    (2048, (784, 512, 5), 2, 2),  # 1644 MFLOP: 8 threads' worth, capped by the 2 CPUs
    (2048, (784, 512, 5), 16, 8),
    (2048, (5, 784, 512), 16, 8),  # the largest product counts, wherever it is
    (100_000, (784,), 4, 1),  # no product at all
])
def test_threads_follow_the_flops_of_the_largest_product(rows, widths, cpus, expected):
    assert matmul_threads(rows, widths, cpus=cpus) == expected


def test_the_environment_forces_a_count_and_a_bad_one_is_a_user_error(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "3")
    assert matmul_threads(1, (2, 2), cpus=1) == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(UserError, match=f"{THREADS_ENV} must be a positive integer"):
            matmul_threads(1, (2, 2))


def test_usable_cpus_is_the_affinity_capped_by_omp_num_threads(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert usable_cpus() == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert usable_cpus() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")  # not a count: ignored
    assert usable_cpus() == 4


def _numpy_blas_threads() -> int:
    """Return the thread count of the BLAS library numpy's matrix products run on."""
    import os

    numpy_dir = os.path.dirname(np.__file__)
    libs = [lib for lib in threadpool_info() if lib["user_api"] == "blas"
            and os.path.dirname(lib["filepath"]).startswith(os.path.dirname(numpy_dir))
            and "numpy" in lib["filepath"]]
    assert len(libs) == 1, libs
    return libs[0]["num_threads"]


def test_blas_threads_sets_numpys_blas_and_restores_it():
    np.ones((2, 2)) @ np.ones((2, 2))  # numpy's BLAS is loaded
    before = _numpy_blas_threads()
    for n in (1, 2):
        with blas_threads(n):
            assert _numpy_blas_threads() == n
        assert _numpy_blas_threads() == before
    with pytest.raises(RuntimeError), blas_threads(1):
        raise RuntimeError  # restored on the way out of an error too
    assert _numpy_blas_threads() == before
