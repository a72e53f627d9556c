"""The stratified split and the mini-batch iterator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doodlelab.data.batches import iterate_minibatches, n_batches
from doodlelab.data.split import load_split_file, save_split, stratified_split
from doodlelab.errors import UserError


@settings(max_examples=30, deadline=None)
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


@given(n=st.integers(1, 300), bs=st.integers(1, 64))
def test_batches_cover_everything_once_and_keep_the_last_partial_batch(n, bs):
    batches = list(iterate_minibatches(n, bs, np.random.default_rng(0)))
    assert len(batches) == n_batches(n, bs)
    assert all(b.size == bs for b in batches[:-1]) and 1 <= batches[-1].size <= bs
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
