"""TorchClassifier honours the task interface of NumpyClassifier, in numpy layout."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import need_module

torch = need_module("torch", "torch")

from doodlelab.config import build_config
from doodlelab.tasks.classifier import NumpyClassifier
from doodlelab.tasks.streams import Streams
from doodlelab.twin.base import configure_threads
from doodlelab.twin.classifier import TorchClassifier

CFG = build_config({"model": {"hidden": [24, 12]}})


def test_starts_from_the_numpy_initial_weights_in_numpy_layout() -> None:
    core = NumpyClassifier(CFG, Streams.from_seed(9))
    tw = TorchClassifier(CFG, Streams.from_seed(9))
    assert tw.backend == "torch"
    state, expected = tw.state_dict(), core.state_dict()
    assert list(state) == list(expected)
    for name, value in expected.items():
        assert state[name].dtype == np.float32
        np.testing.assert_array_equal(state[name], value)  # (in, out) layout, bit for bit


def test_logits_are_eval_mode_and_match_numpy() -> None:
    core = NumpyClassifier(CFG, Streams.from_seed(2))
    tw = TorchClassifier(CFG, Streams.from_seed(2))
    x = np.random.default_rng(0).random((70, 784), dtype=np.float32)
    logits = tw.logits(x, batch_size=32)
    assert logits.shape == (70, 5) and logits.dtype == np.float32
    np.testing.assert_array_equal(tw.logits(x, batch_size=32), logits)  # no dropout at evaluation
    np.testing.assert_allclose(logits, core.logits(x), atol=1e-5)
    assert tw.logits(np.zeros((0, 784), np.float32)).shape == (0, 5)


def test_state_dict_round_trip_keeps_the_optimizer_on_the_same_tensors() -> None:
    tw = TorchClassifier(CFG, Streams.from_seed(0))
    params_before = [id(p) for p in tw.model.parameters()]
    new = {k: np.full_like(v, 0.25) for k, v in tw.state_dict().items()}
    tw.load_state_dict(new)
    assert [id(p) for p in tw.model.parameters()] == params_before
    assert all(p is q for p, q in zip(tw.optimizer.param_groups[0]["params"],
                                      tw.model.parameters()))
    for k, v in tw.state_dict().items():
        np.testing.assert_array_equal(v, new[k])
    with pytest.raises(KeyError):
        tw.load_state_dict({})
    with pytest.raises(ValueError):
        tw.load_state_dict({**new, "0.weight": new["0.weight"].T})


def test_set_lr_and_train_batch_return_the_batch_loss_and_count_before_the_step() -> None:
    cfg = build_config({"model": {"hidden": [24, 12], "dropout": 0.0}})  # train pass = eval pass
    tw = TorchClassifier(cfg, Streams.from_seed(0))
    tw.set_lr(0.0123)
    assert tw.optimizer.param_groups[0]["lr"] == 0.0123
    before = tw.state_dict()
    rng = np.random.default_rng(1)
    x = rng.random((8, 784)).astype(np.float64)  # any float input is cast to the model dtype
    y = rng.integers(0, 5, 8).astype(np.int32)
    z = tw.logits(x.astype(np.float32)).astype(np.float64)  # the logits the step starts from
    z -= z.max(axis=1, keepdims=True)
    expected_loss = float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(8), y]))
    loss, correct = tw.train_batch(x, y)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert correct == int((z.argmax(axis=1) == y).sum())
    assert any(not np.array_equal(before[k], v) for k, v in tw.state_dict().items())


def test_configure_threads_uses_the_usable_cpus_unless_omp_says_otherwise(monkeypatch) -> None:
    import doodlelab.twin.base as twin_base

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(twin_base, "usable_cpus", lambda: 3)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert configure_threads() == 3 and torch.get_num_threads() == 3
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's choice: torch's count is left alone
        assert configure_threads() == 2
    finally:
        torch.set_num_threads(before)
