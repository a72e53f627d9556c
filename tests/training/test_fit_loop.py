"""The fit loop's bookkeeping, worked by hand: a scripted task answers every call with numbers
written in the test, so each history value, each early-stopping decision, each checkpoint and
each batch handed to the task has an expected value that does not come from the loop itself."""

from __future__ import annotations

import math

import numpy as np
import pytest

from doodlelab.config import load_config
from doodlelab.data.batches import iterate_minibatches
from doodlelab.training import fit as loop
from doodlelab.training.fit import (
    HISTORY_COLUMNS,
    FitState,
    epoch_batches,
    fit,
    history_columns,
    schedule_from,
    training_batches,
)


class Script:
    """A task whose answers are written in the test: (loss, correct) per batch, scores per split."""

    kind, backend, cfg, n_classes, widths = "classifier", "script", None, 5, (784, 5)

    def __init__(self, batches, scores, terms=None):
        self.batches, self.scores, self.terms = list(batches), list(scores), list(terms or [])
        self.lrs, self.seen, self.loaded = [], [], []
        self.steps = 0  # the "weights": how many batches it has trained on
        self.loss_terms = {}

    def set_lr(self, lr):
        self.lrs.append(lr)

    def train_batch(self, x, y):
        self.seen.append((np.array(x, copy=True), np.array(y, copy=True)))
        self.steps += 1
        if self.terms:
            self.loss_terms = self.terms.pop(0)
        return self.batches.pop(0)

    def evaluate(self, x, y):
        return dict(self.scores.pop(0))

    def logits(self, x):
        raise AssertionError("the loop scores a split through evaluate")

    def input_gradient(self, x, k):
        raise AssertionError("not used by the loop")

    def grads(self):
        raise AssertionError("not used by the loop")

    def training_state(self):
        return self.state_dict()

    def load_training_state(self, state):
        self.load_state_dict(state)

    def state_dict(self):
        return {"w": np.array([self.steps])}

    def load_state_dict(self, state):
        self.loaded.append(int(state["w"][0]))
        self.steps = int(state["w"][0])


X = np.repeat(np.arange(10.0, dtype=np.float32)[:, None], 784, axis=1)  # row i holds i everywhere
Y = np.arange(10) % 5
XV, YV = np.zeros((5, 784), np.float32), np.arange(5)


def _cfg(*overrides):
    return load_config(None, ["augment.enabled=false", "train.batch_size=4", "optim.schedule=constant",
                              "optim.lr=0.1", *overrides])


def _run(task, cfg, **kw):
    return fit(task, X, Y, XV, YV, cfg, shuffle_rng=np.random.default_rng(3),
               augment_rng=np.random.default_rng(4), progress=False, **kw)


def _scores(val_losses, val_accuracies=None):
    """Train and validation scores of each epoch, in the order the loop asks for them."""
    accs = val_accuracies or [0.5] * len(val_losses)
    out = []
    for loss, acc in zip(val_losses, accs):
        out += [{"loss": 9.0, "accuracy": 0.1}, {"loss": loss, "accuracy": acc}]
    return out


def test_each_epochs_row_holds_the_batch_means_and_the_scores_worked_by_hand():
    # 10 rows in batches of 4: 4, 4, 2. Epoch 1 batches (loss, correct): (0.5, 1), (1.0, 2), (2.0, 1)
    # -> batch_loss (0.5*4 + 1.0*4 + 2.0*2) / 10 = 1.0, batch_accuracy (1 + 2 + 1) / 10 = 0.4.
    # Epoch 2: (0.25, 3), (0.5, 3), (0.75, 2) -> (1 + 2 + 1.5) / 10 = 0.45 and 8 / 10 = 0.8.
    # Terms, the same each epoch: ce 1, 2, 3 -> (4 + 8 + 6) / 10 = 1.8; align 0.5, 0.5, 1 -> 0.6.
    batches = [(0.5, 1), (1.0, 2), (2.0, 1), (0.25, 3), (0.5, 3), (0.75, 2)]
    terms = [{"ce": 1.0, "align": 0.5}, {"ce": 2.0, "align": 0.5}, {"ce": 3.0, "align": 1.0}] * 2
    scores = [{"loss": 0.9, "accuracy": 0.3}, {"loss": 1.1, "accuracy": 0.2, "active": 0.5},
              {"loss": 0.7, "accuracy": 0.6}, {"loss": 0.8, "accuracy": 0.6, "active": 0.25}]
    task = Script(batches, scores, terms)
    seen_rows = []
    # cosine over 2 epochs from 0.1: the row's lr is the rate at the epoch's start, 0.1 and 0.05
    result = _run(task, _cfg("train.epochs=2", "optim.schedule=cosine"), on_epoch=seen_rows.append)
    expected = [
        {"epoch": 1, "train_loss": 0.9, "train_accuracy": 0.3, "val_loss": 1.1, "val_accuracy": 0.2,
         "batch_loss": 1.0, "batch_accuracy": 0.4, "lr": 0.1, "term_ce": 1.8, "term_align": 0.6,
         "diag_active": 0.5},
        {"epoch": 2, "train_loss": 0.7, "train_accuracy": 0.6, "val_loss": 0.8, "val_accuracy": 0.6,
         "batch_loss": 0.45, "batch_accuracy": 0.8, "lr": 0.05, "term_ce": 1.8, "term_align": 0.6,
         "diag_active": 0.25},
    ]
    for row, want in zip(result.history, expected, strict=True):
        assert {k: v for k, v in row.items() if k != "seconds"} == pytest.approx(want, rel=1e-12)
        assert row["seconds"] > 0
    assert seen_rows == result.history
    assert history_columns(result.history) == [*HISTORY_COLUMNS, "term_ce", "term_align", "diag_active"]
    assert result.epoch_seconds == [row["seconds"] for row in result.history]
    assert result.train_seconds >= sum(result.epoch_seconds)
    assert (result.best_epoch, result.weights_epoch, result.stopped_early) == (2, 2, False)  # 0.6 > 0.2
    # Every step's rate, at its fraction of an epoch: 0.05 (1 + cos(pi t / 2)) for t = 0, 1/3, ... 5/3
    steps = [0.05 * (1 + math.cos(math.pi * t / 6)) for t in range(6)]
    assert task.lrs == pytest.approx(steps, rel=1e-12)


def test_the_task_trains_on_each_epochs_shuffled_batches_in_order():
    task = Script([(1.0, 0)] * 6, _scores([1.0, 1.0]))
    _run(task, _cfg("train.epochs=2"))
    rng = np.random.default_rng(3)  # the loop's shuffle stream, drawn the documented way
    order = [idx for _ in range(2) for idx in iterate_minibatches(10, 4, rng)]
    assert [len(y) for _, y in task.seen] == [4, 4, 2, 4, 4, 2]
    for (x, y), idx in zip(task.seen, order, strict=True):
        assert x[:, 0].tolist() == idx.tolist() and y.tolist() == Y[idx].tolist()
    assert np.concatenate([x[:, 0] for x, _ in task.seen[:3]]).astype(int).tolist() != list(range(10))


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_on_val_loss_with_min_delta_by_hand(restore):
    # min_delta 0.02, patience 2. Best so far b, better means < b - 0.02:
    # e1 1.0 (best) | e2 0.95 < 0.98 (best) | e3 0.96 (wait 1) | e4 0.90 < 0.93 (best)
    # | e5 0.899 (wait 1) | e6 0.89 (wait 2: stop). Three batches per epoch: epoch 4 ends at step 12.
    task = Script([(1.0, 0)] * 30, _scores([1.0, 0.95, 0.96, 0.90, 0.899, 0.89, 0.1]))
    states, rows = [], []

    def keep(state):
        states.append(state)
        rows.append(len(state.history))  # the state's history grows on: count it now

    result = _run(task, _cfg("train.epochs=7", "train.patience=2", "train.min_delta=0.02",
                             "train.monitor=val_loss", f"train.restore_best={str(restore).lower()}"),
                  checkpoint=keep)
    assert result.stopped_early and len(result.history) == 6 and result.best_epoch == 4
    assert [(s.epoch, s.best_value, s.best_epoch, s.waited) for s in states] == [
        (1, 1.0, 1, 0), (2, 0.95, 2, 0), (3, 0.95, 2, 1), (4, 0.90, 4, 0), (5, 0.90, 4, 1), (6, 0.90, 4, 2)]
    assert rows == [1, 2, 3, 4, 5, 6]
    # restore_best keeps the best epoch's weights (taken when it was best) and loads them at the end
    kept = [int(s.best_state["w"][0]) for s in states]
    assert kept == ([3, 6, 6, 12, 12, 12] if restore else [0] * 6)
    assert task.loaded == ([12] if restore else [])
    assert result.weights_epoch == (4 if restore else 6)


def test_early_stopping_on_val_accuracy_needs_more_than_min_delta():
    # better means > best + 0.01: e1 0.5 | e2 0.505 (wait 1) | e3 0.52 (best) | e4 0.52 (wait 1)
    # | e5 0.529 (wait 2: stop)
    task = Script([(1.0, 0)] * 30, _scores([1.0] * 6, [0.5, 0.505, 0.52, 0.52, 0.529, 0.9]))
    states = []
    result = _run(task, _cfg("train.epochs=6", "train.patience=2", "train.min_delta=0.01"),
                  checkpoint=states.append)
    assert [(s.best_value, s.best_epoch, s.waited) for s in states] == [
        (0.5, 1, 0), (0.5, 1, 1), (0.52, 3, 0), (0.52, 3, 1), (0.52, 3, 2)]
    assert result.stopped_early and result.best_epoch == 3


def test_patience_zero_never_stops_and_restore_without_a_best_epoch_loads_nothing():
    task = Script([(1.0, 0)] * 12, _scores([1.0, 2.0, 3.0, 4.0]))
    result = _run(task, _cfg("train.epochs=4", "train.monitor=val_loss", "train.restore_best=true"))
    assert not result.stopped_early and len(result.history) == 4 and result.best_epoch == 1
    assert task.loaded == [3] and result.weights_epoch == 1


def test_a_fit_started_from_a_state_goes_on_where_it_stopped():
    # After 2 of 4 epochs: best val_loss 0.5 at epoch 1, waited 1, patience 2. Epoch 3 (0.6) is
    # not better: wait 2, stop. The earlier rows and their seconds stay in front.
    done = [{"epoch": 1, "seconds": 2.0, "val_loss": 0.5}, {"epoch": 2, "seconds": 3.0, "val_loss": 0.7}]
    start = FitState(2, done, 0.5, 1, 1, {"w": np.array([3])})
    task = Script([(1.0, 0)] * 6, _scores([0.6, 0.1]))
    result = _run(task, _cfg("train.epochs=4", "train.patience=2", "train.monitor=val_loss",
                             "train.restore_best=true", "optim.schedule=step", "optim.step_size=1",
                             "optim.gamma=0.5"), start=start)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert result.history[2]["lr"] == pytest.approx(0.1 * 0.5**2)  # the rate of epoch 3 (t = 2)
    assert result.epoch_seconds[:2] == [2.0, 3.0] and len(result.epoch_seconds) == 3
    assert len(task.seen) == 3  # one epoch trained
    assert result.stopped_early and result.best_epoch == 1 and task.loaded == [3]


def test_a_progress_bar_names_the_backend_and_shows_the_last_scores(capsys):
    task = Script([(1.0, 0)] * 6, _scores([1.25, 0.75], [0.5, 0.625]))
    fit(task, X, Y, XV, YV, _cfg("train.epochs=2"), shuffle_rng=np.random.default_rng(3),
        augment_rng=np.random.default_rng(4), progress=True)
    err = capsys.readouterr().err
    assert "train script" in err and "epoch/s" in err and "/2 [" in err
    assert "loss=9.000" in err and "val_acc=0.625" in err
    task = Script([(1.0, 0)] * 3, _scores([1.0]))
    fit(task, X, Y, XV, YV, _cfg("train.epochs=1"), shuffle_rng=np.random.default_rng(3),
        augment_rng=np.random.default_rng(4), progress=None)  # stderr is no terminal here
    assert capsys.readouterr().err == ""


def test_a_diverged_batch_names_the_epoch_and_the_rate():
    task = Script([(1.0, 0), (1.0, 0), (1.0, 0), (1.0, 0), (float("inf"), 0)], _scores([1.0, 1.0]))
    expected = r"in epoch 2 \(batch loss inf\); lower optim.lr \(now 0.1\)"
    with pytest.raises(loop.TrainingDiverged, match=expected):
        _run(task, _cfg("train.epochs=3"))


def test_history_columns_of_no_rows_and_of_terms_and_diagnostics():
    assert history_columns([]) == list(HISTORY_COLUMNS)
    row = {"epoch": 1, "diag_b": 0.0, "term_z": 1.0, "other": 2.0, "term_a": 3.0}
    assert history_columns([row]) == [*HISTORY_COLUMNS, "term_z", "term_a", "diag_b"]


@pytest.mark.parametrize("overrides, at, lr", [
    # cosine from 0.1 to a floor of 0.01 after a 1-epoch warm-up, over 3 epochs:
    # t=0: 0.1 (0 + 1) / 2 = 0.05; t=1: 0.1; t=2: 0.01 + 0.09 (1 + cos(pi / 2)) / 2 = 0.055
    (["optim.schedule=cosine", "optim.min_lr=0.01", "optim.warmup_epochs=1"], [0, 1, 2], [0.05, 0.1, 0.055]),
    # step: 0.1 halved every 2 epochs
    (["optim.schedule=step", "optim.step_size=2", "optim.gamma=0.5"], [0, 1.9, 2, 4],
     [0.1, 0.1, 0.05, 0.025]),
])
def test_the_schedule_takes_every_setting_of_the_configuration(overrides, at, lr):
    schedule = schedule_from(_cfg("train.epochs=3", *overrides))
    assert [schedule(t) for t in at] == pytest.approx(lr, rel=1e-12)


class _Rank:
    """Rank ``rank`` of two processes: the second half of each batch for rank 1; sums add ``other``."""

    world_size = 2

    def __init__(self, rank, other=None):
        self.rank, self.other = rank, other

    def rows(self, n):
        return slice(0, n // 2) if self.rank == 0 else slice(n // 2, n)

    def all_sum(self, values):
        self.sent = np.array(values, copy=True)
        return values if self.other is None else values + self.other


def test_a_shares_batches_are_its_rows_of_the_whole_batches_distortions():
    cfg = load_config(None, ["train.batch_size=4", "augment.enabled=true", "augment.shift=2"])
    x = np.random.default_rng(0).random((10, 784)).astype(np.float32)
    whole = list(epoch_batches(x, Y, cfg, 2, np.random.default_rng(3), np.random.default_rng(4)))
    mine = list(epoch_batches(x, Y, cfg, 2, np.random.default_rng(3), np.random.default_rng(4), _Rank(1)))
    assert [b.position for b in whole] == pytest.approx([2.0, 2 + 1 / 3, 2 + 2 / 3])
    for a, b in zip(whole, mine, strict=True):
        assert b.size == a.y.size and b.rows == slice(a.y.size // 2, a.y.size)
        np.testing.assert_array_equal(b.x, a.x[b.rows])
        np.testing.assert_array_equal(b.y, a.y[b.rows])
        assert b.position == a.position
    assert not np.array_equal(whole[0].x, x[np.sort(np.flatnonzero(np.isin(Y, whole[0].y)))][:4])


class ShardedScript(Script):
    """A scripted task that records the shares the loop announces before each batch."""

    def distribute(self, world_size):
        self.world = world_size

    def set_batch_shard(self, n, rows):
        self.shards = [*getattr(self, "shards", []), (n, rows)]


def test_the_epoch_sums_of_two_processes_are_added_before_the_means():
    # Rank 1 trains the second half of each batch: 2, 2, 1 rows with (loss, correct) (1.0, 1),
    # (2.0, 2), (4.0, 0) -> its sums: loss 2 + 4 + 4 = 10, correct 3, rows 5, term t 5 * 1.0.
    # Rank 0 sent loss 5, correct 1, rows 5, term 5 * 3.0: means (10 + 5) / 10, (3 + 1) / 10, 20 / 10.
    task = ShardedScript([(1.0, 1), (2.0, 2), (4.0, 0)], [], [{"t": 1.0}] * 3)
    cfg = _cfg("train.epochs=1")
    batches = epoch_batches(X, Y, cfg, 0, np.random.default_rng(3), np.random.default_rng(4), _Rank(1))
    other = np.array([5.0, 1.0, 5.0, 15.0])
    running = loop.train_epoch(task, batches, schedule_from(cfg), 1, _Rank(1, other))
    assert running == pytest.approx({"batch_loss": 1.5, "batch_accuracy": 0.4, "term_t": 2.0}, rel=1e-12)
    assert task.shards == [(4, slice(2, 4)), (4, slice(2, 4)), (2, slice(1, 2))]


def test_one_process_announces_no_shares():
    task = Script([(1.0, 0)] * 3, _scores([1.0]))  # no set_batch_shard: calling it would fail
    result = _run(task, _cfg("train.epochs=1"))
    assert result.history[0]["batch_loss"] == 1.0


def test_training_batches_are_the_batches_fit_trains_on():
    cfg = _cfg("train.epochs=2", "augment.enabled=true", "augment.shift=2")
    task = Script([(1.0, 0)] * 6, _scores([1.0, 1.0]))
    fit(task, X, Y, XV, YV, cfg, shuffle_rng=np.random.default_rng(3), augment_rng=np.random.default_rng(4),
        progress=False)
    listed = list(training_batches(X, Y, cfg, np.random.default_rng(3), np.random.default_rng(4)))
    assert [b.position for b in listed] == pytest.approx([0, 1 / 3, 2 / 3, 1, 4 / 3, 5 / 3])
    assert len(listed) == len(task.seen) == 6
    for batch, (x, y) in zip(listed, task.seen, strict=True):
        np.testing.assert_array_equal(batch.x, x)
        np.testing.assert_array_equal(batch.y, y)


def _course(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 5
    x = rng.random((n, 784), dtype=np.float32) * 0.2
    for i, c in enumerate(y):
        x[i, 100 * c:100 * c + 50] = 1.0
    return x, y


def test_fit_new_checkpoints_every_epoch_and_a_resumed_fit_ends_bit_for_bit_where_the_whole_one_ends():
    import copy

    from doodlelab.tasks.streams import STREAMS

    cfg = load_config(None, ["model.hidden=[8]", "train.batch_size=8", "train.epochs=4", "model.dropout=0.2",
                             "train.restore_best=true", "train.monitor=val_loss"])
    x, y = _course()
    saved = {}

    def keep(arrays, meta):
        saved[meta["epoch"]] = copy.deepcopy((arrays, meta))

    whole, result = loop.fit_new(cfg, "numpy", "classifier", x[:30], y[:30], x[30:], y[30:], progress=False,
                                 checkpoint=keep)
    assert sorted(saved) == [1, 2, 3, 4]
    arrays, meta = saved[2]
    weights = set(whole.state_dict())
    assert set(arrays) == weights | {f"momentum.{k}" for k in weights} | {f"best.{k}" for k in weights}
    assert set(meta) == {"epoch", "history", "best_value", "best_epoch", "waited", "streams"}
    assert [row["epoch"] for row in meta["history"]] == [1, 2]
    assert meta["best_value"] == min(row["val_loss"] for row in meta["history"])
    assert meta["best_epoch"] == 1 + int(np.argmin([row["val_loss"] for row in meta["history"]]))
    assert set(meta["streams"]) == set(STREAMS)
    trained = []
    resumed, again = loop.fit_new(cfg, "numpy", "classifier", x[:30], y[:30], x[30:], y[30:],
                                  progress=False, resume=saved[2],
                                  on_epoch=lambda row: trained.append(row["epoch"]))
    assert trained == [3, 4]  # the resumed fit trains only what was missing
    assert [r["val_loss"] for r in again.history] == [r["val_loss"] for r in result.history]
    assert (again.best_epoch, again.weights_epoch) == (result.best_epoch, result.weights_epoch)
    for name, w in whole.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[name], w)


def test_resume_state_puts_the_task_and_every_stream_back():
    from doodlelab.tasks.streams import STREAMS, Streams

    class Held:
        def load_training_state(self, state):
            self.state = state

    streams = Streams.from_seed(5)
    states = {name: np.random.default_rng(100 + k).bit_generator.state for k, name in enumerate(STREAMS)}
    arrays = {"0.weight": np.ones(2), "momentum.0.weight": np.zeros(2), "best.0.weight": np.full(2, 7.0)}
    meta = {"epoch": 3, "history": [{"epoch": 1}], "best_value": 0.25, "best_epoch": 2, "waited": 1,
            "streams": states}
    task = Held()
    state = loop.resume_state(task, streams, arrays, meta)
    assert set(task.state) == {"0.weight", "momentum.0.weight"}
    assert (state.epoch, state.history, state.best_value, state.best_epoch, state.waited) == (
        3, [{"epoch": 1}], 0.25, 2, 1)
    assert list(state.best_state) == ["0.weight"] and state.best_state["0.weight"][0] == 7.0
    for k, name in enumerate(STREAMS):
        assert getattr(streams, name).random() == np.random.default_rng(100 + k).random()


def test_fit_new_builds_the_task_it_is_asked_for_and_trains_it_in_the_group(monkeypatch, capsys):
    from doodlelab.tasks.streams import Streams
    from doodlelab.training import registry

    asked = {}

    def make_task(cfg, backend, task, **kw):
        asked.update(backend=backend, task=task, **kw)
        return ShardedScript([(1.0, 0)] * 3, [{"loss": 1.0, "accuracy": 0.5}] * 2)

    monkeypatch.setattr(registry, "make_task", make_task)
    vectors = np.ones((7, 3))
    cfg = _cfg("train.epochs=1", "train.seed=11")
    task, result = loop.fit_new(cfg, "torch", "two_tower", X, Y, XV, YV, class_vectors=vectors, n_classes=7,
                                device="dev", group=_Rank(0), progress=True)
    assert (asked["backend"], asked["task"], asked["n_classes"]) == ("torch", "two_tower", 7)
    assert asked["device"] == "dev"
    assert asked["class_vectors"] is vectors and task.world == 2
    assert asked["streams"].init.random() == Streams.from_seed(11).init.random()  # the seed's streams
    # rank 0 trains the first half of each batch, in the order of the seed's shuffle stream
    assert task.shards == [(4, slice(0, 2)), (4, slice(0, 2)), (2, slice(0, 1))]
    order = list(iterate_minibatches(10, 4, Streams.from_seed(11).shuffle))
    assert [x[:, 0].tolist() for x, _ in task.seen] == [idx[:len(idx) // 2].tolist() for idx in order]
    # this fake group adds nothing from rank 1: each score is rank 0's share of the rows' sum,
    # train 5 of 10 rows (loss 1.0 * 5 / 10, accuracy 0.5 * 5 / 10), validation 2 of 5 rows
    row = result.history[0]
    assert (row["train_loss"], row["train_accuracy"], row["val_loss"], row["val_accuracy"]) == pytest.approx(
        (0.5, 0.25, 0.4, 0.2), rel=1e-12)
    assert "train script" in capsys.readouterr().err  # progress=True reaches the bar


def test_a_tie_is_no_improvement():
    task = Script([(1.0, 0)] * 9, _scores([1.0, 1.0, 1.0], [0.5, 0.5, 0.5]))
    assert _run(task, _cfg("train.epochs=3", "train.monitor=val_loss")).best_epoch == 1
    task = Script([(1.0, 0)] * 9, _scores([1.0, 1.0, 1.0], [0.5, 0.5, 0.5]))
    assert _run(task, _cfg("train.epochs=3")).best_epoch == 1  # val_accuracy


def test_with_no_usable_validation_value_no_epoch_is_best_and_nothing_is_restored():
    # NaN is never better: no best epoch; patience 2 stops after epoch 2; restore_best has nothing to load
    task = Script([(1.0, 0)] * 9, _scores([float("nan")] * 3))
    result = _run(task, _cfg("train.epochs=3", "train.monitor=val_loss", "train.patience=2",
                             "train.restore_best=true"))
    assert (result.best_epoch, result.weights_epoch, result.stopped_early) == (0, 2, True)
    assert task.loaded == []


def test_a_fit_started_after_its_last_epoch_trains_nothing_and_did_not_stop_early():
    done = [{"epoch": 1, "seconds": 2.0, "val_loss": 0.5}, {"epoch": 2, "seconds": 3.0, "val_loss": 0.7}]
    task = Script([], [])
    result = _run(task, _cfg("train.epochs=2", "train.monitor=val_loss"),
                  start=FitState(2, done, 0.5, 1, 1, {"w": np.array([3])}))
    assert result.history == done and not result.stopped_early and task.seen == []


def test_on_a_terminal_the_bar_shows_and_is_cleared_at_the_end(capsys, monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    task = Script([(1.0, 0)] * 3, _scores([1.0]))
    fit(task, X, Y, XV, YV, _cfg("train.epochs=1"), shuffle_rng=np.random.default_rng(3),
        augment_rng=np.random.default_rng(4))  # progress=None: a bar when stderr is a terminal
    err = capsys.readouterr().err
    assert "train script" in err
    assert err.endswith("\r") and not err.endswith("\n")  # leave=False: the line is wiped


def test_the_training_time_is_the_time_the_fit_took():
    import time

    task = Script([(1.0, 0)] * 3, _scores([1.0]))
    tick = time.perf_counter()
    result = _run(task, _cfg("train.epochs=1"))
    assert 0 < result.train_seconds <= time.perf_counter() - tick


def test_an_empty_share_joins_the_sum_with_weight_zero():
    from doodlelab.tasks.classifier import NumpyClassifier
    from doodlelab.tasks.streams import Streams

    class Empty:
        world_size = 3

        def rows(self, n):
            return slice(0, 0)

        def all_sum(self, values):
            self.sent = np.array(values, copy=True)
            return values + np.array([6.0, 3.0])  # the other processes' loss and accuracy sums

    cfg = load_config(None, ["model.hidden=[4]"])
    task = NumpyClassifier(cfg, Streams.from_seed(0))  # a real task: x and y of unequal length fail
    x, y = np.random.default_rng(0).random((6, 784)).astype(np.float32), np.arange(6) % 5
    empty = Empty()
    assert loop.split_scores(task, x, y, empty) == pytest.approx({"loss": 1.0, "accuracy": 0.5})
    assert empty.sent.tolist() == [0.0, 0.0]


def test_without_scoring_the_training_split_its_columns_are_nan_and_the_bar_shows_the_batch_loss(capsys):
    task = Script([(0.5, 1), (1.0, 2), (2.0, 1)], [{"loss": 1.1, "accuracy": 0.625}])  # validation only
    result = fit(task, X, Y, XV, YV, _cfg("train.epochs=1"), shuffle_rng=np.random.default_rng(3),
                 augment_rng=np.random.default_rng(4), progress=True, score_train=False)
    row = result.history[0]
    assert math.isnan(row["train_loss"]) and math.isnan(row["train_accuracy"])
    assert (row["val_loss"], row["val_accuracy"], row["batch_loss"]) == (1.1, 0.625, 1.0)
    err = capsys.readouterr().err
    assert "loss=1.000" in err and "val_acc=0.625" in err  # batch_loss (0.5*4 + 1*4 + 2*2) / 10


def test_only_a_task_that_can_share_a_batch_trains_in_several_processes(monkeypatch):
    from doodlelab.training import registry

    cfg = _cfg("train.epochs=1")
    batches = epoch_batches(X, Y, cfg, 0, np.random.default_rng(3), np.random.default_rng(4), _Rank(1))
    with pytest.raises(AssertionError, match="^only a torch task trains in several processes$"):
        loop.train_epoch(Script([(1.0, 0)] * 3, []), batches, schedule_from(cfg), 1, _Rank(1))
    monkeypatch.setattr(registry, "make_task", lambda *a, **kw: Script([(1.0, 0)] * 3, _scores([1.0])))
    with pytest.raises(AssertionError, match="^only a torch task trains in several processes$"):
        loop.fit_new(cfg, "numpy", "classifier", X, Y, XV, YV, group=_Rank(0), progress=False)


def test_fit_new_passes_on_whether_to_score_the_training_split(monkeypatch):
    from doodlelab.training import registry

    validation_only = [{"loss": 2.0, "accuracy": 0.5}]
    monkeypatch.setattr(registry, "make_task", lambda *a, **kw: Script([(1.0, 0)] * 3, validation_only))
    _, result = loop.fit_new(_cfg("train.epochs=1"), "numpy", "classifier", X, Y, XV, YV, progress=False,
                             score_train=False)
    row = result.history[0]
    assert math.isnan(row["train_loss"]) and row["val_loss"] == 2.0


def test_the_training_curve_is_scored_on_a_fixed_stratified_sample_of_a_large_split(monkeypatch):
    from doodlelab.data.split import stratified_subset
    from doodlelab.tasks.classifier import NumpyClassifier
    from doodlelab.tasks.streams import Streams

    rng = np.random.default_rng(0)
    x = rng.random((60, 784)).astype(np.float32)
    y = np.repeat(np.arange(5), 12)
    xv, yv = x[:10].copy(), y[:10].copy()
    cfg = load_config(None, ["model.hidden=[8]", "train.epochs=2", "train.batch_size=16", "train.seed=3"])

    def trained(cap):
        monkeypatch.setattr(loop, "TRAIN_CURVE_IMAGES", cap)
        task = NumpyClassifier(cfg, Streams.from_seed(3))
        seen = []  # the training scores each epoch, measured again on the rows the loop should use
        sample = stratified_subset(np.arange(60), y, cap, 3) if cap < 60 else np.arange(60)
        result = fit(task, x, y, xv, yv, cfg, shuffle_rng=np.random.default_rng(1),
                     augment_rng=np.random.default_rng(2), progress=False,
                     on_epoch=lambda row: seen.append(loop.split_scores(task, x[sample], y[sample])))
        return task, result, seen, sample

    whole_task, whole, whole_seen, _ = trained(60)  # the whole split (60 rows) is scored
    task, capped, seen, sample = trained(20)  # 20 of 60: 4 of each class
    assert np.bincount(y[sample]).tolist() == [4] * 5
    for row, again in zip(capped.history, seen):
        assert (row["train_loss"], row["train_accuracy"]) == (again["loss"], again["accuracy"])
    for row, again in zip(whole.history, whole_seen):
        assert (row["train_loss"], row["train_accuracy"]) == (again["loss"], again["accuracy"])
    # scoring fewer rows moves no stream: the weights and the validation numbers keep their bits
    for a, b in zip(whole_task.state_dict().values(), task.state_dict().values()):
        np.testing.assert_array_equal(a, b)
    assert [(r["val_loss"], r["batch_loss"]) for r in whole.history] == [
        (r["val_loss"], r["batch_loss"]) for r in capped.history]
    # the sample is drawn once from the run's seed: the same rows every time
    xs, ys = loop.curve_sample(x, y, 3)
    np.testing.assert_array_equal(ys, y[sample])
    np.testing.assert_array_equal(xs, x[sample])
