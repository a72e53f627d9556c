"""fit_seeds and score_train: every seed of a row is bit for bit the seed trained alone."""

from __future__ import annotations

import math

import numpy as np
import pytest

from doodlelab.config import build_config, load_config
from doodlelab.data.prepare import prepare
from doodlelab.studies.sweep import sweep_point, sweep_point_seeds
from doodlelab.training.fit import fit_new
from doodlelab.training.seeds import fit_seeds, seed_config

# Every option of the loop that draws or decides per seed: dropout (hidden and input),
# augmentation, weight decay, Nesterov, a cosine schedule with warm-up, early stopping
# with patience 1 and the best weights restored.
OPTIONS = ["model.hidden=[24,12]", "model.dropout=0.3", "model.input_dropout=0.1",
           "augment.enabled=true", "augment.shift=2", "optim.weight_decay=0.001",
           "optim.nesterov=true", "optim.schedule=cosine", "optim.warmup_epochs=1",
           "train.epochs=8", "train.batch_size=16", "train.patience=1",
           "train.restore_best=true", "train.monitor=val_accuracy"]


def _data(seed: int, n: int = 90, nv: int = 30):
    """Return a learnable (x (n, 784), y, x_val, y_val): each class lights its own band."""
    rng = np.random.default_rng(seed)
    out = []
    for m in (n, nv):
        y = rng.integers(0, 5, m)
        x = rng.random((m, 784), dtype=np.float32) * 0.3
        for c in range(5):
            x[y == c, 100 + 120 * c : 160 + 120 * c] += 0.7
        out += [x, y]
    return out


def _no_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _assert_same_fit(pair, alone) -> None:
    (task, result), (task1, result1) = pair, alone
    assert _no_seconds(result.history) == _no_seconds(result1.history)
    assert (result.best_epoch, result.weights_epoch, result.stopped_early) == \
        (result1.best_epoch, result1.weights_epoch, result1.stopped_early)
    state, state1 = task.training_state(), task1.training_state()
    assert state.keys() == state1.keys()
    for name in state:
        np.testing.assert_array_equal(state[name], state1[name], err_msg=name)


@pytest.mark.parametrize("kind", ["classifier", "two_tower"])
def test_each_seed_equals_the_seed_trained_alone(kind: str) -> None:
    cfg = load_config(None, OPTIONS)
    seeds = [3, 0, 11]
    vectors = np.random.default_rng(9).normal(size=(5, 6)).astype(np.float32)
    data = _data(1)
    fitted = fit_seeds(cfg, "numpy", kind, seeds, *data, class_vectors=vectors, progress=False)
    assert len(fitted) == 3
    for seed, pair in zip(seeds, fitted):
        alone = fit_new(seed_config(cfg, seed), "numpy", kind, *data, class_vectors=vectors, progress=False)
        _assert_same_fit(pair, alone)
    # the options did act: seeds differ, and early stopping stopped at least one of them
    assert fitted[0][1].history != fitted[1][1].history
    assert any(result.stopped_early for _, result in fitted)


def test_per_seed_data_and_the_callback() -> None:
    cfg = load_config(None, OPTIONS)
    per_seed = [_data(1), _data(2)]
    seen = []
    fitted = fit_seeds(cfg, "numpy", "classifier", [5, 6], *(list(part) for part in zip(*per_seed)),
                       progress=False, on_seed=lambda i, task, result: seen.append(i))
    assert seen == [0, 1]
    for seed, data, pair in zip([5, 6], per_seed, fitted):
        _assert_same_fit(pair, fit_new(seed_config(cfg, seed), "numpy", "classifier", *data, progress=False))


def test_bad_seed_lists_are_refused() -> None:
    cfg = load_config(None, ["train.epochs=1"])
    with pytest.raises(ValueError, match="seeds must differ"):
        fit_seeds(cfg, "numpy", "classifier", [1, 1], *_data(0))
    x, y, xv, yv = _data(0)
    with pytest.raises(ValueError, match="x_train: 1 per-seed arrays for 2 seeds"):
        fit_seeds(cfg, "numpy", "classifier", [1, 2], [x], y, xv, yv)


@pytest.mark.parametrize("kind", ["classifier", "two_tower"])
def test_score_train_false_leaves_weights_and_validation_as_they_were(kind: str) -> None:
    cfg = load_config(None, OPTIONS)
    vectors = np.random.default_rng(9).normal(size=(5, 6)).astype(np.float32)
    scored = fit_new(cfg, "numpy", kind, *_data(4), class_vectors=vectors, progress=False)
    unscored = fit_new(cfg, "numpy", kind, *_data(4), class_vectors=vectors, progress=False,
                       score_train=False)
    rows, rows0 = unscored[1].history, scored[1].history
    assert len(rows) == len(rows0) and list(rows[0]) == list(rows0[0])  # the same columns
    for row, row0 in zip(rows, rows0):
        assert math.isnan(row["train_loss"]) and math.isnan(row["train_accuracy"])
        assert 0 <= row0["train_accuracy"] <= 1
        for key in row:
            if key not in ("train_loss", "train_accuracy", "seconds"):
                assert row[key] == row0[key], key
    for name, value in scored[0].training_state().items():
        np.testing.assert_array_equal(unscored[0].training_state()[name], value)


def _sweep_row_alone(data, cfg, settings, seed):
    """The sweep.csv row of one seed computed without the sweep's seed path: fit_new, then TTA."""
    from doodlelab.studies.sweep import _row
    from doodlelab.training.scoring import probabilities

    raw = cfg.to_dict()
    raw["train"]["seed"] = seed
    cfg = build_config(raw)
    train_idx, val_idx = data.split_for(seed, cfg.data.val_fraction)
    x, y = data.train.x, data.train.y
    task, result = fit_new(cfg, "numpy", "classifier", x[train_idx], y[train_idx], x[val_idx], y[val_idx],
                           progress=False, n_classes=len(data.classes))
    tta = float((probabilities(task, x[val_idx], tta=True).argmax(axis=1) == y[val_idx]).mean())
    return _row(0, settings, seed, result, tta), result.history


def _no_timing(row):
    return {k: v for k, v in row.items() if k not in ("seconds", "point")}


def test_sweep_point_seeds_equals_each_seed_trained_alone(course_dir) -> None:
    cfg = load_config(None, [*OPTIONS, "train.epochs=3"])
    data = prepare(cfg, course_dir, test=False)
    settings = {"optim.lr": 0.05}
    together = sweep_point_seeds(data, cfg, settings, [0, 7])
    assert data.split_for(0, 0.1)[1].tolist() != data.split_for(7, 0.1)[1].tolist()  # own splits
    for seed, (row, history) in zip([0, 7], together):
        row1, history1 = _sweep_row_alone(data, cfg, settings, seed)
        assert _no_timing(row) == _no_timing(row1)
        expected = [{"label": row["label"], "seed": seed, **h} for h in _no_seconds(history1)]
        assert _no_seconds(history) == expected
        assert _no_timing(sweep_point(data, cfg, settings, seed)[0]) == _no_timing(row)
    unscored = sweep_point_seeds(data, cfg, settings, [0], score_train=False)[0]
    assert math.isnan(unscored[0]["final_train_accuracy"])
    assert unscored[0]["val_accuracy"] == together[0][0]["val_accuracy"]
