"""SGD and learning-rate schedules, checked against numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from doodlelab.nn import SGD, Linear, LRSchedule


def test_single_momentum_step_by_hand():
    p = np.array([1.0, -2.0])
    g = np.array([0.5, 0.25])
    opt = SGD([(p, g)], lr=0.1, momentum=0.9)
    opt.step()  # v = g = [0.5, 0.25]; p = p - 0.1 v
    np.testing.assert_allclose(p, [0.95, -2.025])
    opt.step()  # v = 0.9 v + g = [0.95, 0.475]; p -= 0.1 v
    np.testing.assert_allclose(p, [0.855, -2.0725])
    np.testing.assert_allclose(opt.velocity[0], [0.95, 0.475])


def test_nesterov_and_weight_decay_step_by_hand():
    p = np.array([2.0])
    g = np.array([1.0])
    opt = SGD([(p, g)], lr=0.5, momentum=0.5, nesterov=True, weight_decay=0.1)
    opt.step()
    # d = g + wd p = 1.2; v = 1.2; step = d + mu v = 1.8; p = 2 - 0.5 * 1.8 = 1.1
    np.testing.assert_allclose(p, [1.1])
    opt.step()
    # d = 1 + 0.11 = 1.11; v = 0.6 + 1.11 = 1.71; step = 1.11 + 0.855 = 1.965
    np.testing.assert_allclose(p, [1.1 - 0.5 * 1.965])


def test_plain_sgd_without_momentum():
    p, g = np.array([3.0]), np.array([2.0])
    opt = SGD([(p, g)], lr=0.25, momentum=0.0)
    opt.step()
    np.testing.assert_allclose(p, [2.5])


def test_changing_lr_follows_torch_convention_not_textbook():
    # torch: v accumulates raw gradients, lr multiplies at the step. With lr changing
    # between steps this differs from v = mu v - lr g.
    p, g = np.array([0.0]), np.array([1.0])
    opt = SGD([(p, g)], lr=1.0, momentum=0.9)
    opt.step()
    opt.lr = 0.1
    opt.step()  # v = 1.9 -> p = -1 - 0.19
    np.testing.assert_allclose(p, [-1.19])


def test_optimizer_updates_model_arrays_in_place():
    rng = np.random.default_rng(0)
    lin = Linear(3, 2, rng=rng)
    w_ref = lin.params["weight"]
    opt = SGD(lin.parameters(), lr=0.1)
    lin.grads["weight"][...] = 1.0
    before = w_ref.copy()
    opt.step()
    assert lin.params["weight"] is w_ref
    np.testing.assert_allclose(w_ref, before - 0.1, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [dict(lr=0.0), dict(lr=0.1, momentum=1.0), dict(lr=0.1, momentum=0.0, nesterov=True),
     dict(lr=0.1, weight_decay=-1.0)],
)
def test_sgd_rejects_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError):
        SGD([(np.zeros(1), np.zeros(1))], **kwargs)


def test_step_schedule():
    s = LRSchedule("step", 0.1, 30, step_size=10, gamma=0.5)
    assert [s(e) for e in (0, 9, 10, 19, 20)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_cosine_schedule_endpoints_and_midpoint():
    s = LRSchedule("cosine", 0.2, 10, min_lr=0.02)
    assert s(0) == pytest.approx(0.2)
    assert s(5) == pytest.approx(0.02 + 0.18 * 0.5)
    assert s(10) == pytest.approx(0.02)
    assert s(2.5) == pytest.approx(0.02 + 0.09 * (1 + math.cos(math.pi / 4)))


def test_warmup_ramps_linearly_then_decays():
    s = LRSchedule("cosine", 0.1, 12, warmup_epochs=2)
    assert s(0) == pytest.approx(0.1 / 3)
    assert s(1) == pytest.approx(0.2 / 3)
    assert s(2) == pytest.approx(0.1)
    assert s(12) == pytest.approx(0.0, abs=1e-12)


def test_unknown_schedule_is_rejected():
    with pytest.raises(ValueError, match="unknown schedule"):
        LRSchedule("exponential", 0.1, 10)
