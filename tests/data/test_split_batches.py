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
