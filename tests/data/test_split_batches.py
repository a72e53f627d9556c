"""The stratified split and the mini-batch iterator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doodlelab.data.batches import iterate_minibatches, n_batches
from doodlelab.data.split import load_split_file, save_split, stratified_split
from doodlelab.errors import UserError
from tests.conftest import examples


@settings(max_examples=examples(30))
@given(counts=st.lists(st.integers(2, 60), min_size=2, max_size=5),
       frac=st.floats(0.05, 0.45), seed=st.integers(0, 1000))
def test_split_is_a_stratified_partition(counts, frac, seed):
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    np.random.default_rng(seed).shuffle(labels)
    tr, va = stratified_split(labels, frac, seed)
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(labels.size))
    for c, n in enumerate(counts):
        k = (labels[va] == c).sum()
        assert 1 <= k <= n - 1
        assert abs(k - frac * n) <= 1


@pytest.mark.parametrize("frac,expected", [
    # round(frac * n) per class, then at least 1 and at most n - 1 where n >= 2:
    # 0.2: 100 -> 20, 10 -> 2, 3 -> round(0.6) = 1, 2 -> round(0.4) = 0 -> 1, 1 -> 0 (alone: stays)
    (0.2, [20, 2, 1, 1, 0]),
    # 0.9: 100 -> 90, 10 -> 9, 3 -> round(2.7) = 3 -> 2, 2 -> round(1.8) = 2 -> 1, 1 -> round(0.9) = 1
    (0.9, [90, 9, 2, 1, 1]),
])
def test_split_of_an_unbalanced_set_by_hand(frac, expected):
    counts = [100, 10, 3, 2, 1]
    labels = np.repeat(np.arange(5), counts)
    np.random.default_rng(1).shuffle(labels)
    tr, va = stratified_split(labels, frac, seed=0)
    assert np.bincount(labels[va], minlength=5).tolist() == expected
    assert np.bincount(labels[tr], minlength=5).tolist() == [n - k for n, k in zip(counts, expected)]
    assert np.all(np.diff(va) > 0) and np.all(np.diff(tr) > 0)  # sorted, no repeats
    assert tr.dtype == va.dtype == np.int64


def test_split_draws_members_at_random_not_the_first_ones():
    labels = np.repeat(np.arange(2), 50)
    _, va = stratified_split(labels, 0.2, seed=0)
    firsts = np.r_[np.arange(10), 50 + np.arange(10)]
    assert va.size == 20 and not np.array_equal(va, firsts)
    assert np.ptp(va[va < 50]) > 10  # the 10 of class 0 spread over its 50 positions


def test_split_depends_only_on_labels_fraction_and_seed():
    labels = np.repeat(np.arange(5), 100)
    a = stratified_split(labels, 0.1, 3)
    b = stratified_split(labels, 0.1, 3)
    c = stratified_split(labels, 0.1, 4)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert a[1].size == 50


def test_split_file_roundtrip_and_mismatch(tmp_path):
    labels = np.repeat(np.arange(5), 10)
    tr, va = stratified_split(labels, 0.2, 0)
    save_split(tmp_path / "split.npz", tr, va)
    tr2, va2 = load_split_file(tmp_path / "split.npz", 50)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(va, va2)
    with pytest.raises(UserError, match="partition"):
        load_split_file(tmp_path / "split.npz", 51)


def test_split_file_must_be_a_plain_partition_and_comes_back_int64(tmp_path):
    path = tmp_path / "split.npz"
    np.savez(path, train=np.array([0, 2, 3], np.int32), val=np.array([1], np.int32))
    for n in (4, None):  # checked against range(4), or read as it is
        tr, va = load_split_file(path, n)
        assert tr.dtype == va.dtype == np.int64 and tr.tolist() == [0, 2, 3] and va.tolist() == [1]
    np.savez(path, train=np.array([0, 0, 3]), val=np.array([1]))  # right size, 2 missing
    with pytest.raises(UserError, match="does not partition the 4 training images"):
        load_split_file(path, 4)
    np.savez(path, train=np.array([0, 2, 3]), val=np.array([{"x": 1}], dtype=object))
    with pytest.raises(UserError, match="member val holds pickled Python objects"):  # never unpickled
        load_split_file(path, 4)


@pytest.mark.parametrize("frac, alone_in_val", [(0.2, False), (0.6, True)])
def test_a_small_split_worked_by_hand(frac, alone_in_val):
    # Labels 4 0 0 7 1 1 1: class 0 (positions 1, 2) and class 1 (positions 4-6) keep at least one
    # image on each side; class 4 (position 0) and class 7 (position 3) have one image each, which
    # goes to validation only when round(frac * 1) = 1 (frac 0.6; frac 0.2 rounds to 0).
    # Class 1: round(0.2 * 3) = 1 and round(0.6 * 3) = 2 of its 3 images.
    labels = np.array([4, 0, 0, 7, 1, 1, 1])
    for seed in range(20):
        tr, va = stratified_split(labels, frac, seed)
        assert np.intersect1d(tr, va).size == 0 and sorted([*tr, *va]) == list(range(7))
        assert len(set(va) & {1, 2}) == 1
        assert len(set(va) & {4, 5, 6}) == (1 if frac == 0.2 else 2)
        assert set(va) & {0, 3} == ({0, 3} if alone_in_val else set())


def test_every_image_of_a_class_can_be_drawn_and_each_seed_is_its_own_draw():
    labels = np.repeat(np.arange(2), 5)
    draws = {tuple(stratified_split(labels, 0.4, seed)[1]) for seed in range(200)}
    # 2 of 5 per class: C(5, 2)^2 = 100 possible validation sets; 200 seeds reach most of them
    assert len(draws) > 60
    assert set(np.concatenate([list(d) for d in draws])) == set(range(10))
    again = {tuple(stratified_split(labels, 0.4, seed)[1]) for seed in range(200)}
    assert again == draws  # each seed gives its split again


@given(n=st.integers(1, 300), bs=st.integers(1, 64))
def test_batches_cover_everything_once_and_keep_the_last_partial_batch(n, bs):
    batches = list(iterate_minibatches(n, bs, np.random.default_rng(0)))
    assert len(batches) == n_batches(n, bs)
    assert all(b.size == bs for b in batches[:-1])
    assert batches[-1].size == (n % bs or bs)  # the remainder, or a full batch
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(n))


def test_batches_reshuffle_every_epoch_from_the_generator():
    rng = np.random.default_rng(0)
    e1 = np.concatenate(list(iterate_minibatches(100, 10, rng)))
    e2 = np.concatenate(list(iterate_minibatches(100, 10, rng)))
    assert not np.array_equal(e1, e2)
    again = np.random.default_rng(0)
    np.testing.assert_array_equal(e1, np.concatenate(list(iterate_minibatches(100, 10, again))))
    np.testing.assert_array_equal(np.concatenate(list(iterate_minibatches(7, 3))), np.arange(7))


# -- properties the fit loop and the run folders rely on (issue 9) ---------------------------

@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 200), sizes=st.lists(st.integers(1, 70), min_size=2, max_size=3),
       seed=st.integers(0, 2**32 - 1))
def test_batch_order_is_one_permutation_whatever_the_batch_size(n, sizes, seed):
    # the batch size only cuts the epoch's permutation: it never changes which images come first
    empty = np.empty(0, np.int64)
    orders = [np.concatenate([empty, *iterate_minibatches(n, bs, np.random.default_rng(seed))])
              for bs in sizes]
    for order in orders:
        np.testing.assert_array_equal(order, orders[0])
    assert sorted(orders[0].tolist()) == list(range(n))
    assert len(list(iterate_minibatches(n, sizes[0]))) == n_batches(n, sizes[0])


@settings(max_examples=40, deadline=None)
@given(labels=st.lists(st.sampled_from([0, 3, 7, 42]), min_size=1, max_size=120),
       frac=st.floats(0.01, 0.49), seed=st.integers(0, 2**32 - 1))
def test_split_of_any_labels_is_a_partition_that_survives_its_file(labels, frac, seed, tmp_path_factory):
    labels = np.array(labels)
    tr, va = stratified_split(labels, frac, seed)
    assert tr.dtype == va.dtype == np.int64 and np.all(np.diff(tr) > 0) and np.all(np.diff(va) > 0)
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(labels.size))
    for c in np.unique(labels):
        n, k = int((labels == c).sum()), int((labels[va] == c).sum())
        assert k == (0 if n == 1 else min(max(round(frac * n), 1), n - 1))  # singletons stay in train
    path = tmp_path_factory.mktemp("split") / "split.npz"
    save_split(path, tr, va)
    tr2, va2 = load_split_file(path, labels.size)
    np.testing.assert_array_equal(tr2, tr)
    np.testing.assert_array_equal(va2, va)


def test_a_split_file_of_float_indices_or_another_size_is_refused(tmp_path):
    np.savez(tmp_path / "split.npz", train=np.arange(8.0), val=np.arange(8.0, 10.0))
    with pytest.raises(UserError, match="member train has dtype float64, expected int"):
        load_split_file(tmp_path / "split.npz", 10)
    np.savez(tmp_path / "split.npz", train=np.arange(8), val=np.arange(8, 10), extra=np.arange(2))
    with pytest.raises(UserError, match="holds members"):
        load_split_file(tmp_path / "split.npz", 10)


def test_a_stratified_subset_keeps_each_class_share_by_hand():
    from doodlelab.data.split import stratified_subset

    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)  # shares 0.6, 0.3, 0.1
    idx = np.arange(100)
    sub = stratified_subset(idx, labels, 20, seed=3)
    assert sub.size == 20 and np.all(np.diff(sub) > 0) and set(sub) <= set(idx)
    assert np.bincount(labels[sub]).tolist() == [12, 6, 2]
    assert np.array_equal(sub, stratified_subset(idx, labels, 20, seed=3))  # a seed fixes it
    assert not np.array_equal(sub, stratified_subset(idx, labels, 20, seed=4))


def test_a_subset_rounds_by_the_largest_remainders_and_keeps_small_splits_whole():
    from doodlelab.data.split import stratified_subset

    labels = np.array([0] * 5 + [1] * 5 + [2] * 5)  # 10 of 15: 3.33 each -> 4, 3, 3
    sub = stratified_subset(np.arange(15), labels, 10, seed=0)
    assert sorted(np.bincount(labels[sub]).tolist()) == [3, 3, 4]
    assert np.array_equal(stratified_subset(np.arange(15), labels, 15, seed=0), np.arange(15))
    odd = np.array([7, 2, 9])
    assert np.array_equal(stratified_subset(odd, np.zeros(10, int), 5, seed=0), [2, 7, 9])
