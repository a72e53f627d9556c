"""The decision rule of a study, against hand-worked intervals."""

from __future__ import annotations

import math

import pytest

from doodlelab.studies.decision import decide, paired_difference, t_interval

T_975_4 = 2.7764451052  # Student t, 97.5% quantile, 4 degrees of freedom (tables)


def test_the_t_interval_of_five_values_by_hand() -> None:
    diffs = [0.01, 0.02, -0.01, 0.00, 0.01]  # mean 0.006, sample variance 5.2e-4 / 4
    got = t_interval(diffs)
    half = T_975_4 * math.sqrt(5.2e-4 / 4) / math.sqrt(5)
    assert got.mean == pytest.approx(0.006)
    assert (got.low, got.high) == (pytest.approx(0.006 - half), pytest.approx(0.006 + half))
    assert got.covers_zero and got.n == 5


def test_one_value_has_no_interval_and_tells_nothing_apart() -> None:
    got = t_interval([0.5])
    assert (got.low, got.high, got.n) == (None, None, 1) and got.covers_zero


def test_a_paired_difference_uses_only_the_shared_seeds_seed_by_seed() -> None:
    a = {0: 0.90, 1: 0.80, 2: 0.70}
    b = {0: 0.88, 1: 0.78, 2: 0.68, 3: 0.10}  # seed 3 has no partner
    got = paired_difference(a, b)
    assert got.n == 3 and got.mean == pytest.approx(0.02)
    assert got.low == pytest.approx(0.02) and got.high == pytest.approx(0.02)  # no spread: a sure gap


def _seeds(*accs: float) -> dict[int, float]:
    return dict(enumerate(accs))


def test_the_simplest_tied_setting_is_chosen_not_the_best() -> None:
    small = _seeds(0.90, 0.91, 0.89, 0.92, 0.90)  # simplest
    middle = _seeds(0.89, 0.89, 0.90, 0.92, 0.89)  # best minus small: -0.01, -0.02, 0.01, 0, -0.01
    large = _seeds(0.91, 0.93, 0.88, 0.92, 0.91)  # the best mean (0.910)
    weak = _seeds(0.85, 0.86, 0.84, 0.86, 0.85)  # clearly below the best in every seed
    d = decide([("small", small), ("middle", middle), ("large", large), ("weak", weak)], default="large")
    status = {v.name: v.status for v in d.verdicts}
    assert d.best == "large"
    assert status == {"small": "tied", "middle": "tied", "large": "best", "weak": "below"}
    assert d.chosen == "small" and not d.default_is_chosen
    assert [v.name for v in d.verdicts if v.chosen] == ["small"]
    # small - large = -0.01, -0.02, 0.01, 0, -0.01: the hand-worked interval above, mirrored
    versus = next(v.versus_best for v in d.verdicts if v.name == "small")
    assert versus.mean == pytest.approx(-0.006) and versus.covers_zero
    pair = {(a, b): iv for a, b, iv in d.pairs}[("small", "large")]
    assert pair.mean == pytest.approx(-0.006)


def test_a_clear_winner_is_chosen_even_when_it_is_not_the_simplest() -> None:
    d = decide([("plain", _seeds(0.80, 0.82, 0.81)), ("augmented", _seeds(0.88, 0.91, 0.89))],
               default="augmented")
    assert d.chosen == d.best == "augmented" and d.default_is_chosen
    assert [v.status for v in d.verdicts] == ["below", "best"]


def test_with_one_seed_everything_is_tied_and_the_simplest_is_chosen() -> None:
    d = decide([("a", {0: 0.70}), ("b", {0: 0.95})], default="b")
    assert d.seeds == 1 and d.best == "b" and d.chosen == "a"
    assert all(v.status in ("best", "tied") for v in d.verdicts)


def test_settings_trained_with_other_seeds_are_refused() -> None:
    with pytest.raises(ValueError, match="same seeds"):
        decide([("a", {0: 0.9, 1: 0.9}), ("b", {0: 0.9, 2: 0.9})])


def test_equal_means_make_the_simpler_setting_the_best() -> None:
    d = decide([("a", _seeds(0.9, 0.8)), ("b", _seeds(0.8, 0.9))])
    assert d.best == "a" == d.chosen
