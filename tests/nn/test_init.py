"""Initialisation schemes: scale, determinism, no global random state."""

from __future__ import annotations

import numpy as np
import pytest

from doodlelab.nn.init import SCHEMES, initialize

EXPECTED_STD = {
    "he_normal": lambda i, o: np.sqrt(2 / i),
    "he_uniform": lambda i, o: np.sqrt(2 / i),
    "glorot_normal": lambda i, o: np.sqrt(2 / (i + o)),
    "glorot_uniform": lambda i, o: np.sqrt(2 / (i + o)),
    "lecun_normal": lambda i, o: np.sqrt(1 / i),
    "torch_default": lambda i, o: 1 / np.sqrt(3 * i),
    "normal": lambda i, o: 0.01,
    "uniform": lambda i, o: 0.05 / np.sqrt(3),
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_has_expected_scale(scheme):
    w = initialize(scheme, (400, 300), rng=np.random.default_rng(0), dtype=np.float64)
    assert w.shape == (400, 300)
    assert abs(w.mean()) < 0.05 * EXPECTED_STD[scheme](400, 300) * 10
    assert w.std() == pytest.approx(EXPECTED_STD[scheme](400, 300), rel=0.02)


def test_same_generator_state_gives_same_weights_and_global_state_is_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = initialize("he_normal", (5, 4), rng=np.random.default_rng(9))
    b = initialize("he_normal", (5, 4), rng=np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_unknown_scheme():
    with pytest.raises(ValueError, match="unknown init"):
        initialize("xavier_magic", (2, 2), rng=np.random.default_rng(0))
