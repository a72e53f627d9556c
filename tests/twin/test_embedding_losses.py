"""The two-tower objectives: hand-written gradients against torch (autograd, F.multi_margin_loss)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import ScriptedDraws, need_module

torch = need_module("torch", "torch")

from doodlelab.nn.embedding_losses import OBJECTIVES, make_objective
from doodlelab.twin.embedding_losses import Objective

LIMITS = {np.float64: 1e-12, np.float32: 1e-6}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", OBJECTIVES)
def test_value_and_gradient_match_autograd(name, dtype):
    rng = np.random.default_rng(4)
    s = rng.uniform(-1, 1, (16, 5)).astype(dtype)
    y = rng.integers(0, 5, 16)
    core = make_objective(name, margin=0.3, scale=4.0, rng=np.random.default_rng(7), label_smoothing=0.1)
    value = core.forward(s, y)
    grad = core.backward()
    st = torch.tensor(s, requires_grad=True)
    twin = Objective(name, margin=0.3, scale=4.0, rng=np.random.default_rng(7), label_smoothing=0.1)
    loss = twin(st, torch.from_numpy(y))
    loss.backward()
    assert value == pytest.approx(loss.item(), rel=LIMITS[dtype], abs=LIMITS[dtype])
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, st.grad.numpy(), rtol=0, atol=LIMITS[dtype])
    assert np.abs(grad).max() > 0  # the batch does have active terms


def test_hinge_rank_is_k_times_torch_multi_margin_loss():
    s = torch.tensor([[0.9, 0.8, -0.5], [0.1, 0.3, 0.2]])
    y = torch.tensor([0, 2])
    # by hand: image 0: 0.1 + 0; image 1: max(0, 0.2 - 0.2 + 0.1) + max(0, 0.2 - 0.2 + 0.3)
    expected = (0.1 + 0.1 + 0.3) / 2
    loss = Objective("hinge_rank", margin=0.2, scale=1.0, rng=np.random.default_rng(0))(s, y)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_triplet_negatives_by_the_rule_and_the_hand_worked_loss():
    # n_i = (y_i + o_i) mod K, one offset o_i from [1, K) per image. Cosines of two images of 3
    # classes, labels (0, 2), margin 0.5, squared distances 2 - 2 cos: offsets (1, 2) give negatives
    # 1 and 1, hinges 0.5 + 2 (0.8 - 0.9) = 0.3 and 0.5 + 2 (0.3 - 0.2) = 0.7, mean 0.5.
    s = torch.tensor([[0.9, 0.8, -0.5], [0.1, 0.3, 0.2]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 2])
    value = Objective("triplet", margin=0.5, scale=1.0, rng=ScriptedDraws(integers=[1, 2]))(s, y)
    value.backward()
    assert value.item() == pytest.approx(0.5, rel=1e-12)
    np.testing.assert_allclose(s.grad.numpy(), [[-1, 1, 0], [0, 1, -1]], rtol=1e-12)  # 2 / 2 images
    # Offsets (2, 1): negatives 2 and 0; hinges 0.5 + 2 (-0.5 - 0.9) < 0 and 0.5 + 2 (0.1 - 0.2) = 0.3.
    other = Objective("triplet", margin=0.5, scale=1.0, rng=ScriptedDraws(integers=[2, 1]))
    assert other(s, y).item() == pytest.approx(0.15, rel=1e-12)
    # As rows 1-2 of a global batch of 3: the offsets of all 3 rows are drawn and rows 1-2 kept.
    shared = Objective("triplet", margin=0.5, scale=1.0, rng=ScriptedDraws(integers=[2, 1, 2]))
    shared.shard = (3, slice(1, 3))
    assert shared(s, y).item() == pytest.approx(0.5, rel=1e-12)
