"""Dropout at its boundaries: p = 0, large p, the 1/(1-p) scale, the mask shared with backward."""

from __future__ import annotations

import numpy as np
import pytest

from doodlelab.nn import Dropout
from doodlelab.nn.modules import dropout_scale
from tests.conftest import ScriptedDraws


@pytest.mark.parametrize("p,scale", [(0.5, 2.0), (0.75, 4.0), (0.9, 10.0), (0.2, 1.25)])
def test_kept_units_are_scaled_by_one_over_one_minus_p(p, scale):
    drop = Dropout(p, rng=np.random.default_rng(0))
    x = np.full((400, 50), 3.0)
    y = drop.forward(x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 3.0 * scale, rtol=1e-14)  # 3 * 1/(1-p)
    # 20,000 units: the dropped share has standard error sqrt(p(1-p)/20000) <= 0.0036.
    assert 1 - kept.mean() == pytest.approx(p, abs=0.015)
    assert y.dtype == np.float64


def test_backward_reuses_the_forward_mask_and_scale():
    drop = Dropout(0.5, rng=np.random.default_rng(1))
    x = np.arange(1.0, 41.0).reshape(4, 10)
    y = drop.forward(x)
    dout = np.full_like(x, 0.5)
    # y = x * m with m in {0, 2}, so dy/dx = m = y / x, and the gradient is dout * m.
    np.testing.assert_array_equal(drop.backward(dout), dout * (y / x))
    assert 0 < np.count_nonzero(y) < y.size


def test_p_zero_and_eval_mode_pass_the_input_through_and_backward_too():
    x = np.ones((3, 4), np.float32)
    for drop in (Dropout(0.0, rng=np.random.default_rng(0)),
                 Dropout(0.5, rng=np.random.default_rng(0)).eval()):
        assert drop.forward(x) is x
        d = np.full((3, 4), 7.0, np.float32)
        assert drop.backward(d) is d


def test_p_zero_draws_nothing_from_the_generator():
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    Dropout(0.0, rng=rng).forward(np.ones((2, 2)))
    assert rng.bit_generator.state == state


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5])
def test_p_outside_zero_to_one_is_refused(p):
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\)"):
        Dropout(p, rng=np.random.default_rng(0))


# The documented rule, worked by hand: one uniform draw per unit, row-major; a unit is kept where
# its draw is at least p (0.3 here), and kept units are multiplied by 1 / (1 - p).
DRAWS = [0.05, 0.3, 0.29999, 0.9,
         0.31, 0.0, 0.7, 0.99]
KEPT = np.array([[0, 1, 0, 1],
                 [1, 0, 1, 1]], dtype=bool)


def test_a_unit_is_kept_where_its_uniform_draw_is_at_least_p():
    x = np.arange(1.0, 9.0, dtype=np.float32).reshape(2, 4)
    drop = Dropout(0.3, rng=ScriptedDraws(DRAWS))
    y = drop.forward(x)
    scale = np.float32(1 / 0.7)
    np.testing.assert_array_equal(y, np.where(KEPT, x * scale, np.float32(0)))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(drop.backward(np.ones_like(x)), np.where(KEPT, scale, np.float32(0)))
    scaled = dropout_scale(ScriptedDraws(DRAWS), (2, 4), 0.3, np.float64)
    np.testing.assert_array_equal(scaled, np.where(KEPT, 1 / 0.7, 0.0))
    assert scaled.dtype == np.float64
    assert repr(Dropout(0.3, rng=np.random.default_rng(0))) == "Dropout(p=0.3)"
