"""The fit loop: early stopping, restoring the best weights, the divergence guard."""

from __future__ import annotations

import numpy as np
import pytest

from doodlelab.config import load_config
from doodlelab.tasks.classifier import NumpyClassifier
from doodlelab.tasks.streams import Streams
from doodlelab.train import TrainingDiverged, fit, loss_and_accuracy


class ScriptedTask:
    """A task whose validation logits follow a script, to drive the loop's decisions."""

    backend = "scripted"

    def __init__(self, val_quality, batch_loss=0.5):
        self.script = list(val_quality)
        self.epoch = 0
        self.batch_loss = batch_loss
        self.weights = np.zeros(1)

    def set_lr(self, lr):
        self.lr = lr

    def train_batch(self, x, y):
        return self.batch_loss, 0

    def logits(self, x):
        q = self.script[min(self.epoch, len(self.script) - 1)]
        out = np.zeros((x.shape[0], 5))
        out[:, 0] = q  # class 0 gets a larger logit as quality grows
        if x.shape[0] == 5:  # the validation call: last of the epoch
            self.epoch += 1
            self.weights = np.array([self.epoch], float)
        return out

    def state_dict(self):
        return {"w": self.weights.copy()}

    def load_state_dict(self, state):
        self.weights = state["w"].copy()


def _data(n):
    return np.zeros((n, 784), np.float32), np.zeros(n, np.int64)


def _fit(task, *overrides):
    cfg = load_config(None, ["augment.enabled=false", *overrides])
    x, y = _data(8)
    xv, yv = _data(5)
    return fit(task, x, y, xv, yv, cfg, shuffle_rng=np.random.default_rng(0),
               augment_rng=np.random.default_rng(1), progress=False)


def test_early_stopping_restores_best_epoch():
    task = ScriptedTask([1.0, 3.0, 2.0, 2.5, 2.0, 2.0, 9.0])
    result = _fit(task, "train.epochs=7", "train.patience=3", "train.monitor=val_loss",
                  "train.restore_best=true")
    assert result.stopped_early and len(result.history) == 5
    assert result.best_epoch == result.weights_epoch == 2
    assert task.weights[0] == 2  # weights of epoch 2 restored


def test_without_restore_the_last_weights_stay():
    task = ScriptedTask([1.0, 3.0, 2.0, 2.5])
    result = _fit(task, "train.epochs=4", "train.monitor=val_loss")
    assert not result.stopped_early and len(result.history) == 4
    assert result.best_epoch == 2 and result.weights_epoch == 4
    assert task.weights[0] == 4


def test_diverging_run_stops_with_clear_message():
    task = ScriptedTask([1.0], batch_loss=float("nan"))
    with pytest.raises(TrainingDiverged, match="diverged in epoch 1.*lower optim.lr"):
        _fit(task, "train.epochs=3")


def test_lr_follows_schedule_per_epoch():
    task = ScriptedTask([1.0] * 4)
    result = _fit(task, "train.epochs=4", "optim.schedule=step", "optim.step_size=2",
                  "optim.gamma=0.5", "optim.lr=0.2")
    assert [h["lr"] for h in result.history] == pytest.approx([0.2, 0.2, 0.1, 0.1])


def test_real_numpy_classifier_learns_a_separable_problem():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 5
    x = rng.random((200, 784), dtype=np.float32) * 0.2
    for i, c in enumerate(y):
        x[i, c * 100 : c * 100 + 50] = 1.0
    cfg = load_config(None, ["augment.enabled=false", "train.epochs=5", "model.hidden=[16]"])
    streams = Streams.from_seed(0)
    task = NumpyClassifier(cfg, streams)
    result = fit(task, x[:150], y[:150], x[150:], y[150:], cfg, shuffle_rng=streams.shuffle,
                 augment_rng=streams.augment, progress=False)
    assert result.history[-1]["val_accuracy"] == 1.0
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    loss, acc = loss_and_accuracy(task.logits(x[150:]), y[150:])
    assert acc == 1.0 and loss < 0.5


class TermsTask(ScriptedTask):
    """A scripted task whose objective has two terms that differ from batch to batch."""

    def __init__(self):
        super().__init__([0.0])
        self.calls = 0

    def train_batch(self, x, y):
        self.calls += 1
        self.loss_terms = {"ce": float(self.calls), "align": 10.0 * len(y)}
        return self.loss_terms["ce"] + self.loss_terms["align"], 0


def test_loss_terms_are_logged_as_epoch_means_and_plotted(tmp_path):
    from doodlelab.figures import plot_loss_terms
    from doodlelab.train import HISTORY_COLUMNS, history_columns

    task = TermsTask()
    result = _fit(task, "train.epochs=2", "train.batch_size=3")  # 8 images: batches of 3, 3, 2
    first, second = result.history
    assert first["term_ce"] == pytest.approx((1 * 3 + 2 * 3 + 3 * 2) / 8)  # weighted by batch size
    assert second["term_ce"] == pytest.approx((4 * 3 + 5 * 3 + 6 * 2) / 8)
    assert first["term_align"] == pytest.approx((30 * 3 + 30 * 3 + 20 * 2) / 8)
    assert history_columns(result.history) == [*HISTORY_COLUMNS, "term_ce", "term_align"]
    written = plot_loss_terms(result.history, tmp_path)
    assert [p.name for p in written] == ["loss_terms.png", "loss_terms.csv"]
    rows = (tmp_path / "loss_terms.csv").read_text().splitlines()
    assert rows[0] == "epoch,ce,align" and len(rows) == 3
    assert plot_loss_terms([{"epoch": 1, "term_ce": 1.0}], tmp_path / "single") == []


def test_a_task_without_terms_logs_the_usual_columns():
    from doodlelab.train import HISTORY_COLUMNS, history_columns

    result = _fit(ScriptedTask([0.1, 0.2]), "train.epochs=2")
    assert history_columns(result.history) == list(HISTORY_COLUMNS)


def test_figures_of_many_classes_keep_every_number_in_their_csv(tmp_path):
    from doodlelab.figures import plot_confusion, plot_roc_pr

    k = 40
    names = [f"class {i}" for i in range(k)]
    rng = np.random.default_rng(0)
    y = np.arange(200) % k
    probs = rng.dirichlet(np.ones(k), 200)
    confusion = np.zeros((k, k), int)
    np.add.at(confusion, (y, probs.argmax(1)), 1)
    written = plot_confusion(confusion, names, tmp_path) + plot_roc_pr(y, probs, names, tmp_path)
    assert all(p.stat().st_size > 1000 for p in written)
    rows = (tmp_path / "confusion.csv").read_text().splitlines()
    assert len(rows) == k + 1 and rows[0].split(",")[1:] == names
    roc_classes = {line.split(",")[0] for line in (tmp_path / "roc.csv").read_text().splitlines()[1:]}
    assert roc_classes == set(names)
