"""The fit loop: early stopping, restoring the best weights, the divergence guard."""

from __future__ import annotations

import numpy as np
import pytest

from doodlelab.config import load_config
from doodlelab.tasks.classifier import NumpyClassifier, cross_entropy_scores
from doodlelab.tasks.streams import Streams
from doodlelab.training.fit import TrainingDiverged, fit


class ScriptedTask:
    """A task whose validation logits follow a script, to drive the loop's decisions."""

    backend = "scripted"
    loss_terms: dict[str, float] = {}  # one term (TermsTask reports several)

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

    def evaluate(self, x, y):
        return cross_entropy_scores(self.logits(x), y)

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
    scores = task.evaluate(x[150:], y[150:])
    assert scores["accuracy"] == 1.0 and scores["loss"] < 0.5


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
    from doodlelab.training.figures import plot_loss_terms
    from doodlelab.training.fit import HISTORY_COLUMNS, history_columns

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
    from doodlelab.training.fit import HISTORY_COLUMNS, history_columns

    result = _fit(ScriptedTask([0.1, 0.2]), "train.epochs=2")
    assert history_columns(result.history) == list(HISTORY_COLUMNS)


def test_figures_of_many_classes_keep_every_number_in_their_csv(tmp_path):
    from doodlelab.training.figures import plot_confusion, plot_roc_pr

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


class DiagnosedTask(ScriptedTask):
    """A scripted task that reports two diagnostics with its scores."""

    def evaluate(self, x, y):
        scores = super().evaluate(x, y)  # advances the script on the validation call
        return {**scores, "active": x.shape[0] / 10, "class_cosine": float(self.epoch)}


def test_diagnostics_are_logged_from_validation_and_plotted(tmp_path):
    from doodlelab.training.figures import plot_diagnostics
    from doodlelab.training.fit import HISTORY_COLUMNS, history_columns

    result = _fit(DiagnosedTask([0.1, 0.2]), "train.epochs=2")  # 8 training, 5 validation images
    assert [h["diag_active"] for h in result.history] == [0.5, 0.5]  # from the 5 validation images
    assert [h["diag_class_cosine"] for h in result.history] == [1.0, 2.0]
    assert history_columns(result.history) == [*HISTORY_COLUMNS, "diag_active", "diag_class_cosine"]
    written = plot_diagnostics(result.history, tmp_path)
    assert [p.name for p in written] == ["diagnostics.png", "diagnostics.csv"]
    assert (tmp_path / "diagnostics.csv").read_text().splitlines() == [
        "epoch,active,class_cosine", "1,0.5,1.0", "2,0.5,2.0"]


class _TwoRanks:
    """Rank ``rank`` of two processes whose all-reduce adds the other rank's recorded sums."""

    world_size = 2

    def __init__(self, rank, other=None):
        self.rank, self.other, self.sent = rank, other, None

    def rows(self, n):
        return slice(0, n // 2) if self.rank == 0 else slice(n // 2, n)

    def all_sum(self, values):
        self.sent = np.array(values, copy=True)
        return values if self.other is None else values + self.other


def test_split_scores_in_chunks_and_process_shares_equal_evaluate_on_every_row(monkeypatch):
    import doodlelab.training.fit as train
    from doodlelab.tasks.two_tower import NumpyTwoTower

    rng = np.random.default_rng(3)
    cfg = load_config(None, ["model.hidden=[8]", "two_tower.embed_dim=4", "two_tower.text_hidden=[4]",
                             "two_tower.loss=hardest_hinge", "two_tower.margin=0.5",
                             "two_tower.align_weight=0.5"])  # the default is 0 (no align term)
    task = NumpyTwoTower(cfg, Streams.from_seed(0), rng.normal(size=(5, 6)), dtype=np.float64)
    x, y = rng.random((23, 784)), rng.integers(0, 5, 23)
    whole = task.evaluate(x, y)  # one call on every row
    assert set(whole) == {"loss", "accuracy", "active", "class_cosine", "term_hardest_hinge", "term_align"}
    assert whole["loss"] == pytest.approx(whole["term_hardest_hinge"] + 0.5 * whole["term_align"], rel=1e-12)
    monkeypatch.setattr(train, "SCORE_ROWS", 4)  # 23 rows: chunks of 4, 4, 4, 4, 4, 3
    assert train.split_scores(task, x, y) == pytest.approx(whole, rel=1e-12)
    second = _TwoRanks(1)
    train.split_scores(task, x, y, second)  # rank 1's sums, rows 11..22
    assert train.split_scores(task, x, y, _TwoRanks(0, second.sent)) == pytest.approx(whole, rel=1e-12)
    second = _TwoRanks(1)  # one row: rank 0's share is empty and adds nothing
    train.split_scores(task, x[:1], y[:1], second)
    alone = train.split_scores(task, x[:1], y[:1], _TwoRanks(0, second.sent))
    assert alone == pytest.approx(task.evaluate(x[:1], y[:1]), rel=1e-12)
