"""What the fit loop hands the model: augmented training batches, clean evaluation images,
and at every optimizer step the learning rate of the schedule at that fraction of an epoch.

Expected learning rates are written out by hand (never by calling ``LRSchedule``) and the
learning rate is read back from the parameter change of a momentum-free SGD step, so
neither the logged ``lr`` column nor the optimizer's attribute is trusted.
"""

from __future__ import annotations

import numpy as np
import pytest

from doodlelab.config import load_config
from doodlelab.data.course import Split
from doodlelab.tasks.classifier import NumpyClassifier
from doodlelab.tasks.streams import Streams
from doodlelab.training.fit import fit
from doodlelab.training.scoring import score_on_test

RNG = np.random.default_rng(0)
X_TRAIN = RNG.random((12, 784)).astype(np.float32)
Y_TRAIN = np.arange(12) % 3
X_VAL = RNG.random((7, 784)).astype(np.float32)
Y_VAL = np.arange(7) % 3


class RecordingTask:
    """A task that keeps a copy of every array the loop trains on or scores."""

    backend = "recording"
    loss_terms: dict[str, float] = {}

    def __init__(self) -> None:
        self.trained: list[np.ndarray] = []
        self.scored: list[np.ndarray] = []

    def set_lr(self, lr: float) -> None:
        pass

    def train_batch(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        self.trained.append(np.array(x, copy=True))
        return 1.0, 0

    def logits(self, x: np.ndarray) -> np.ndarray:
        self.scored.append(np.array(x, copy=True))
        return np.tile(np.arange(3.0), (x.shape[0], 1))

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        self.scored.append(np.array(x, copy=True))
        return {"loss": 1.0, "accuracy": 0.0}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        pass


def test_training_batches_are_augmented_but_train_and_val_are_scored_clean():
    cfg = load_config(None, ["train.epochs=2", "train.batch_size=4", "augment.shift=2",
                             "augment.rotate=15"])
    task = RecordingTask()
    fit(task, X_TRAIN, Y_TRAIN, X_VAL, Y_VAL, cfg, shuffle_rng=np.random.default_rng(1),
        augment_rng=np.random.default_rng(2), progress=False)
    # The augmentation is on: no training batch is a plain selection of training rows.
    assert len(task.trained) == 6
    for batch in task.trained:
        assert not any(np.array_equal(row, x) for row in batch for x in X_TRAIN)
    # Every epoch scores the untouched training images, then the untouched validation images.
    assert len(task.scored) == 4
    for i, x in enumerate(task.scored):
        np.testing.assert_array_equal(x, X_TRAIN if i % 2 == 0 else X_VAL)


def _shift(x: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """Move (N, 784) images by whole pixels with black fill, by slicing (not the library's gather)."""
    img = x.reshape(-1, 28, 28)
    out = np.zeros_like(img)
    rs, rd = (slice(0, 28 - dr), slice(dr, 28)) if dr >= 0 else (slice(-dr, 28), slice(0, 28 + dr))
    cs, cd = (slice(0, 28 - dc), slice(dc, 28)) if dc >= 0 else (slice(-dc, 28), slice(0, 28 + dc))
    out[:, rd, cd] = img[:, rs, cs]
    return out.reshape(-1, 784)


@pytest.mark.parametrize("tta", [False, True])
def test_the_test_set_is_scored_on_its_own_images_and_their_one_pixel_shifts(tta):
    cfg = load_config(None, [f"eval.tta={str(tta).lower()}"])
    test = Split(x=X_VAL, y=Y_VAL, classes=("a", "b", "c"))
    task = RecordingTask()
    metrics, probs = score_on_test(task, test, cfg)
    expected = [X_VAL]
    if tta:  # down, up, right, left
        expected += [_shift(X_VAL, 1, 0), _shift(X_VAL, -1, 0), _shift(X_VAL, 0, 1), _shift(X_VAL, 0, -1)]
    assert len(task.scored) == len(expected)
    for got, want in zip(task.scored, expected):
        np.testing.assert_array_equal(got, want)
    # Every view gets logits (0, 1, 2): softmax e^k / (1 + e + e^2) = 0.0900, 0.2447, 0.6652.
    np.testing.assert_allclose(probs[0], [0.09003057, 0.24472847, 0.66524096], atol=1e-8)
    # All predictions are class 2; labels 0, 1, 2, 0, 1, 2, 0 hold two of them: 2/7.
    assert metrics["accuracy"] == pytest.approx(2 / 7)
    assert ("without_tta" in metrics) is tta


def _momentum_free_classifier(overrides: list[str]) -> NumpyClassifier:
    cfg = load_config(None, ["model.hidden=[6]", "model.dropout=0", "optim.momentum=0",
                             "optim.nesterov=false", "optim.weight_decay=0", "augment.enabled=false",
                             *overrides])
    return cfg, NumpyClassifier(cfg, Streams.from_seed(0), dtype=np.float64, n_classes=3)


def _record_step_lrs(task: NumpyClassifier) -> list[float]:
    """Wrap the optimizer's step so each call records lr = -(change of the output bias) / its gradient."""
    seen: list[float] = []
    opt = task.optimizer
    real_step = opt.step
    p, g = opt.parameters[-1]  # the output bias: its gradient is never all zero

    def step() -> None:
        before, grad = p.copy(), g.copy()
        real_step()
        k = np.unravel_index(np.abs(grad).argmax(), grad.shape)
        seen.append(float((before[k] - p[k]) / grad[k]))

    opt.step = step
    return seen


def test_each_sgd_step_uses_the_schedule_at_its_fraction_of_an_epoch():
    # 12 images in batches of 6: two steps per epoch, at epochs t = 0, 0.5, 1, 1.5, 2, 2.5.
    # Warm-up for 1 epoch: lr = 0.1 (t + 1) / 2       -> 0.05, 0.075
    # then cosine over the 2 remaining epochs, s = t - 1: 0.1 (1 + cos(pi s / 2)) / 2
    #   s = 0 -> 0.1;  s = 0.5 -> 0.05 (1 + 0.70710678) = 0.085355339;
    #   s = 1 -> 0.05; s = 1.5 -> 0.05 (1 - 0.70710678) = 0.014644661
    cfg, task = _momentum_free_classifier(["train.epochs=3", "train.batch_size=6", "optim.lr=0.1",
                                           "optim.schedule=cosine", "optim.warmup_epochs=1"])
    seen = _record_step_lrs(task)
    result = fit(task, X_TRAIN, Y_TRAIN, X_VAL, Y_VAL, cfg, shuffle_rng=np.random.default_rng(1),
                 augment_rng=np.random.default_rng(2), progress=False)
    np.testing.assert_allclose(seen, [0.05, 0.075, 0.1, 0.085355339, 0.05, 0.014644661], rtol=1e-7)
    # The history logs the rate at the start of each epoch.
    assert [row["lr"] for row in result.history] == pytest.approx([0.05, 0.1, 0.05])


def test_a_step_schedule_changes_the_rate_at_the_epoch_boundary():
    # 12 images in batches of 4: three steps per epoch; lr 0.2 halves every epoch.
    cfg, task = _momentum_free_classifier(["train.epochs=2", "train.batch_size=4", "optim.lr=0.2",
                                           "optim.schedule=step", "optim.step_size=1",
                                           "optim.gamma=0.5"])
    seen = _record_step_lrs(task)
    fit(task, X_TRAIN, Y_TRAIN, X_VAL, Y_VAL, cfg, shuffle_rng=np.random.default_rng(1),
        augment_rng=np.random.default_rng(2), progress=False)
    np.testing.assert_allclose(seen, [0.2, 0.2, 0.2, 0.1, 0.1, 0.1], rtol=1e-6)
