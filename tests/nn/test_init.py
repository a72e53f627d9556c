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


UNIFORM = {"he_uniform", "glorot_uniform", "torch_default", "uniform"}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_has_expected_scale(scheme):
    w = initialize(scheme, (400, 300), rng=np.random.default_rng(0), dtype=np.float64)
    std = EXPECTED_STD[scheme](400, 300)
    assert w.shape == (400, 300)
    # The mean of 120,000 draws has standard error std / 346; allow 5 of them (0.0144 std):
    # weights drawn with mean 0.02 std fail.
    assert abs(w.mean()) < 5 * std / np.sqrt(w.size)
    assert w.std() == pytest.approx(std, rel=0.02)
    # The shape of the distribution: within one std lie 68.3% of normal draws and
    # 1/sqrt(3) = 57.7% of uniform ones; a uniform draw never passes its limit sqrt(3) std.
    inside = np.mean(np.abs(w) < std)
    if scheme in UNIFORM:
        assert inside == pytest.approx(1 / np.sqrt(3), abs=0.01)
        assert np.abs(w).max() <= np.sqrt(3) * std * (1 + 1e-12)
    else:
        assert inside == pytest.approx(0.6827, abs=0.01)
        assert np.abs(w).max() > 3.5 * std


def test_same_generator_state_gives_same_weights_and_global_state_is_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = initialize("he_normal", (5, 4), rng=np.random.default_rng(9))
    b = initialize("he_normal", (5, 4), rng=np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_unknown_scheme():
    with pytest.raises(ValueError, match="xavier_magic.; choose one of he_normal, he_uniform, "):
        initialize("xavier_magic", (2, 2), rng=np.random.default_rng(0))
