"""How a study decides a setting: paired differences over seeds, a 95% interval, the simplest of the tied.

Every setting of a study is trained with the same seeds (the seed fixes the split, the
initial weights, the batch order and the augmentation), so two settings are compared
seed by seed: the *paired* difference ``d_i = acc(a, seed_i) - acc(b, seed_i)`` removes
what the seed does to both. Its mean gets a Student-t 95% interval
``mean +- t(0.975, n-1) * sd / sqrt(n)`` (``sd`` the sample standard deviation).

The rule, in the spirit of the one-standard-error rule of Hastie, Tibshirani and
Friedman: the *best* setting has the highest mean validation accuracy; a setting is
*tied* with it when the paired interval of their difference covers zero; among the
tied settings (the best included) the *simplest* is chosen. What "simplest" means is
the study's own order of its settings (fewer parameters, fewer epochs, no extra term,
...), simplest first. With one seed there is no interval: every setting is tied, the
simplest is chosen, and :attr:`Decision.seeds` says why nothing could be told apart.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% interval; ``low``/``high`` are None when there are fewer than two values."""

    mean: float
    low: float | None
    high: float | None
    n: int

    @property
    def covers_zero(self) -> bool:
        """Return whether 0 lies in the interval (True without an interval: nothing is told apart)."""
        return self.low is None or self.high is None or self.low <= 0.0 <= self.high


def t_multiplier(n: int, level: float = LEVEL) -> float:
    """Return how many standard errors the half-width of a Student-t interval at ``level`` of a mean of
    ``n >= 2`` values is: ``t(0.5 + level / 2, n - 1)``."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, n - 1))


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Return the mean of ``values`` and its Student-t interval at ``level`` (None bounds for n < 2)."""
    n = len(values)
    if n == 0:
        raise ValueError("an interval needs at least one value")
    mean = statistics.fmean(values)
    if n < 2:
        return Interval(mean, None, None, n)
    half = t_multiplier(n, level) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_difference(a: Mapping[int, float], b: Mapping[int, float]) -> Interval:
    """Return the interval of ``a - b`` over the seeds both have (``a``, ``b``: seed -> accuracy)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError("the two settings share no seed")
    return t_interval([a[s] - b[s] for s in seeds])


@dataclass(frozen=True)
class Verdict:
    """One setting of a decided study."""

    name: str  # how the report names the setting
    accuracy: Interval  # mean validation accuracy over seeds, with its interval
    versus_best: Interval  # paired difference to the best setting (0 for the best itself)
    status: str  # "best", "tied" (with the best) or "below"
    chosen: bool
    default: bool  # the configuration's own setting


@dataclass(frozen=True)
class Decision:
    """A study's verdicts (simplest first), the best, the chosen and the configuration's settings."""

    verdicts: tuple[Verdict, ...]
    best: str
    chosen: str
    default: str | None
    seeds: int  # seeds every setting shares (1: no interval, nothing told apart)
    pairs: tuple[tuple[str, str, Interval], ...] = ()  # (a, b, paired a - b) for every a before b

    @property
    def default_is_chosen(self) -> bool:
        return self.default == self.chosen

    def to_dict(self) -> dict:
        """Return the JSON form (``decision.json``), with ``default_is_chosen``."""
        return {**asdict(self), "default_is_chosen": self.default_is_chosen}


def decide(scores: Sequence[tuple[str, Mapping[int, float]]], default: str | None = None) -> Decision:
    """Decide among ``scores``: ``(name, {seed: validation accuracy})`` per setting, simplest first.

    Raises ValueError when the settings do not share their seeds (the comparison would
    not be paired) or there is no setting.
    """
    if not scores:
        raise ValueError("a study needs at least one setting")
    seed_sets = {frozenset(acc) for _, acc in scores}
    if len(seed_sets) != 1:
        found = sorted(map(sorted, seed_sets))
        raise ValueError(f"the settings were not trained with the same seeds: {found}")
    means = [statistics.fmean(acc.values()) for _, acc in scores]
    b = max(range(len(scores)), key=lambda i: (means[i], -i))  # equal means: the simpler one
    best_scores = scores[b][1]
    versus = [paired_difference(acc, best_scores) for _, acc in scores]
    tied = [i == b or versus[i].covers_zero for i in range(len(scores))]
    chosen = tied.index(True)  # settings come simplest first
    verdicts = tuple(
        Verdict(name, t_interval(list(acc.values())), versus[i],
                "best" if i == b else "tied" if tied[i] else "below", i == chosen, name == default)
        for i, (name, acc) in enumerate(scores))
    pairs = tuple((scores[i][0], scores[j][0], paired_difference(scores[i][1], scores[j][1]))
                  for i in range(len(scores)) for j in range(i + 1, len(scores)))
    return Decision(verdicts, scores[b][0], scores[chosen][0], default, len(next(iter(seed_sets))), pairs)
