"""What the main job studies: each question of the assignment that a setting answers, as validation studies.

A :class:`Study` tries a few :class:`Setting` values of one knob around the configuration
(every study holds the configuration's own setting) with the same seeds for every
setting, and :mod:`doodlelab.studies.decision` picks one by the stated rule: the best mean
validation accuracy, the settings tied with it (paired 95% interval of the difference
covers zero), and among them the simplest. So the settings are listed **simplest first**,
and ``simplest_first`` says what "simpler" means for that knob; the report prints it.

A study that does not decide anything has ``decides=False``: a control (the word vectors),
or a knob the two-tower model shares with the classifier (the image tower's widths, the
optimizer), which the configuration sets once, by Part I's studies, and the two-tower
study checks; a setting with ``candidate=False`` is trained and shown but can
never be chosen (the cross-entropy objective in Part II, which the assignment rules out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from doodlelab.kinds import CLASSIFIER, TWO_TOWER, Kind

STUDY_SEEDS = (0, 1, 2, 3, 4)  # the same five seeds for every setting: differences are paired
STUDY_EPOCHS = 30  # a study row trains this long (its own cosine schedule), unless the study says


@dataclass(frozen=True)
class Setting:
    """One value of a study's knob: the name the report gives it and the configuration values it sets."""

    name: str
    values: Mapping[str, Any]  # "section.key" -> value, e.g. {"model.hidden": [512, 256]}
    candidate: bool = True  # False: trained for comparison, never chosen


@dataclass(frozen=True)
class Study:
    """A validation study: one knob, its settings simplest first, and the assignment question it answers."""

    name: str  # the folder under sweep/
    kind: Kind  # the model kind it trains
    question: str  # the assignment's question, e.g. "I.1.a"
    asks: str  # what it asks, in a few words
    settings: tuple[Setting, ...]  # simplest first: the order the decision rule reads
    simplest_first: str  # what "simpler" means here
    decides: bool = True
    applies: tuple[str, ...] = ()  # the keys the final models take from the pick (default: all its keys)
    seeds: tuple[int, ...] = STUDY_SEEDS
    epochs: int = STUDY_EPOCHS  # for every setting that does not set train.epochs itself

    def keys(self) -> list[str]:
        """Return the configuration keys the study's settings touch."""
        return list(dict.fromkeys(k for s in self.settings for k in s.values))


def _s(name: str, candidate: bool = True, **values: Any) -> Setting:
    """Return a Setting from keyword values whose ``__`` stands for the dot: ``model__hidden=[256]``."""
    return Setting(name, {k.replace("__", "."): v for k, v in values.items()}, candidate)


def _classifier_studies(cfg: Any) -> list[Study]:
    c = CLASSIFIER
    mu = 0.9  # the momentum the study tries (the assignment's suggestion)
    # plain SGD at the rate that matches momentum's step once its velocity has built up: lr / (1 - mu)
    matched = round(cfg.optim.lr / (1 - mu), 6)
    return [
        Study("width", c, "I.1.a", "depth and width of the hidden layers", (
            _s("256", model__hidden=[256]),
            _s("512", model__hidden=[512]),
            _s("512-256", model__hidden=[512, 256]),
            _s("512-256-128", model__hidden=[512, 256, 128]),
            _s("1024-512", model__hidden=[1024, 512]),
        ), "fewer parameters first"),
        Study("activation", c, "I.1.a", "activation of the hidden layers, each with the initialisation "
              "made for it", (
                  _s("ReLU, He", model__activation="relu", model__init="he_normal"),
                  _s("tanh, Glorot", model__activation="tanh", model__init="glorot_normal"),
                  _s("sigmoid, Glorot", model__activation="sigmoid", model__init="glorot_normal"),
              ), "the cheaper function first (ReLU is a comparison, the sigmoid an exponential)"),
        Study("momentum", c, "I.1.b", "momentum, classical and Nesterov", (
            _s("none", optim__momentum=0.0, optim__nesterov=False),
            _s(f"none, rate {matched:g}", False,
               optim__momentum=0.0, optim__nesterov=False, optim__lr=matched),
            _s(f"{mu:g}", optim__momentum=mu, optim__nesterov=False),
            _s(f"{mu:g}, Nesterov", optim__momentum=mu, optim__nesterov=True),
        ), "no momentum first, then classical, then Nesterov, which adds a term; plain SGD at momentum's "
           "step is shown only"),
        Study("learning_rate", c, "I.1.e", "learning rate", (
            _s("0.02", optim__lr=0.02), _s("0.05", optim__lr=0.05), _s("0.1", optim__lr=0.1),
            _s("0.2", optim__lr=0.2),
        ), "the smaller step first"),
        Study("batch_size", c, "I.1.e", "mini-batch size", (
            _s("256", train__batch_size=256), _s("128", train__batch_size=128),
            _s("64", train__batch_size=64),
        ), "the larger batch first: fewer steps, less computation"),
        Study("epochs", c, "I.1.e", "number of epochs, each with its own cosine schedule", (
            _s("15", train__epochs=15), _s("30", train__epochs=30), _s("60", train__epochs=60),
            _s("100", train__epochs=100),
        ), "fewer epochs first"),
        Study("augmentation", c, "I.1.f", "random whole-pixel shifts of the training images", (
            _s("none", augment__enabled=False), _s("shifts up to 2 pixels", augment__enabled=True),
        ), "no augmentation first"),
        Study("dropout", c, "I.1.f", "dropout after every hidden activation", (
            _s("0", model__dropout=0.0), _s("0.2", model__dropout=0.2),
        ), "no dropout first"),
        Study("weight_decay", c, "I.1.f", "weight decay", (
            _s("0", optim__weight_decay=0.0), _s("0.0005", optim__weight_decay=5e-4),
        ), "no decay first"),
        Study("schedule", c, "I.1.f", "learning-rate schedule", (
            _s("constant", optim__schedule="constant"), _s("cosine", optim__schedule="cosine"),
        ), "the constant rate first"),
    ]


def _two_tower_studies(cfg: Any) -> list[Study]:
    t = TWO_TOWER
    margin = cfg.two_tower.margin  # the objective study gives the ranking hinge the configured margin
    other = 1.0 if margin != 1.0 else 0.5  # and one more
    return [
        Study("image_tower", t, "II.1.a", "hidden widths of the image tower (Part I's choice, checked)", (
            _s("256", model__hidden=[256]), _s("512-256", model__hidden=[512, 256]),
        ), "fewer parameters first", decides=False),
        Study("word_tower", t, "II.1.a", "hidden widths of the word tower", (
            _s("32", two_tower__text_hidden=[32]), _s("64", two_tower__text_hidden=[64]),
        ), "fewer parameters first"),
        Study("shared_space", t, "II.1.a", "dimension of the shared space", (
            _s("16", two_tower__embed_dim=16), _s("64", two_tower__embed_dim=64),
        ), "the smaller space first"),
        Study("word_vectors", t, "II.1.a", "what the word vectors bring: GloVe against two controls", (
            _s("one-hot", two_tower__word_vectors="one-hot"),
            _s("random, 50-d", two_tower__word_vectors="random-50d"),
            _s("GloVe, 50-d", two_tower__word_vectors="glove-6b-50d"),
        ), "the vectors that know nothing of the words first", decides=False),
        Study("momentum_towers", t, "II.1.b", "momentum (Part I's choice, checked against none)", (
            _s("none", optim__momentum=0.0, optim__nesterov=False),
            _s("0.9", optim__momentum=0.9, optim__nesterov=False),
        ), "no momentum first", decides=False),
        Study("margin", t, "II.1.c", "margin of the ranking hinge", (
            _s("0.25", two_tower__margin=0.25), _s("0.5", two_tower__margin=0.5),
            _s("1", two_tower__margin=1.0), _s("2", two_tower__margin=2.0),
        ), "the smaller margin (the weaker demand) first"),
        Study("align", t, "II.1.c", "weight of the alignment term added to the ranking hinge", (
            _s("0", two_tower__align_weight=0.0), _s("0.5", two_tower__align_weight=0.5),
        ), "no extra term first"),
        Study("objective", t, "II.1.c", "the objective, each at two of its own margins", (
            _s(f"ranking hinge, margin {margin:g}", two_tower__loss="hinge_rank", two_tower__margin=margin),
            _s(f"ranking hinge, margin {other:g}", two_tower__loss="hinge_rank", two_tower__margin=other),
            _s("hardest-negative hinge, margin 0.5", two_tower__loss="hardest_hinge", two_tower__margin=0.5),
            _s("hardest-negative hinge, margin 1", two_tower__loss="hardest_hinge", two_tower__margin=1.0),
            _s("triplet, margin 0.5", two_tower__loss="triplet", two_tower__margin=0.5),
            _s("triplet, margin 1", two_tower__loss="triplet", two_tower__margin=1.0),
            _s("cosine contrastive, threshold 0", two_tower__loss="cosine_contrastive",
               two_tower__margin=0.0),
            _s("cosine contrastive, threshold 0.3", two_tower__loss="cosine_contrastive",
               two_tower__margin=0.3),
            _s("alignment alone", two_tower__loss="align_only"),
            _s("softmax cross-entropy", False, two_tower__loss="softmax_ce"),
        ), "the ranking hinge of DeViSE (the literature's baseline) first; the cross-entropy is shown "
           "for comparison and never chosen", applies=("two_tower.loss",)),
        Study("learning_rate_towers", t, "II.1.f", "learning rate (Part I's choice, checked)", (
            _s("0.05", optim__lr=0.05), _s("0.1", optim__lr=0.1),
        ), "the smaller step first", decides=False),
    ]


QUICK_SEEDS = (0, 1)


def _quick(study: Study) -> Study:
    """Return ``study`` shrunk for ``doodlelab run --quick`` (a smoke test of every step): two seeds, one
    epoch; the epochs study tries 1 and 2 epochs instead of its long runs."""
    settings = study.settings
    if any("train.epochs" in s.values for s in settings):
        settings = (_s("1", train__epochs=1), _s("2", train__epochs=2))
    return replace(study, settings=settings, seeds=QUICK_SEEDS, epochs=1)


def _show(value: Any) -> str:
    return "-".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _with_configured(study: Study, cfg: Any) -> Study:
    """Return ``study`` with the configuration's own setting added last when none of its settings is it
    (a run with other settings, ``--set``, still studies what it trains)."""
    try:
        default_setting(study, cfg)
        return study
    except ValueError:
        raw = cfg.to_dict()
        values = {k: _value(raw, k) for k in study.keys() if k != "train.epochs"} or {
            "train.epochs": raw["train"]["epochs"]}
        name = "configured: " + ", ".join(_show(v) for v in values.values())
        return replace(study, settings=(*study.settings, Setting(name, values)))


@dataclass(frozen=True)
class Plan:
    """The studies of one main job, checked against its configuration."""

    studies: tuple[Study, ...] = field(default_factory=tuple)

    def by_question(self, question: str) -> list[Study]:
        return [s for s in self.studies if s.question == question]


def default_setting(study: Study, cfg: Any) -> Setting:
    """Return the study's setting that is the configuration's own; ValueError if it has none."""
    raw = cfg.to_dict()
    for setting in study.settings:
        if all(_value(raw, k) == _plain(v) for k, v in setting.values.items()
               if not (k == "train.epochs" and study.name != "epochs")):
            return setting
    current = {k: _value(raw, k) for k in study.keys()}
    raise ValueError(f"study {study.name} holds no setting equal to the configuration's {current}")


def _value(raw: dict[str, Any], dotted: str) -> Any:
    section, key = dotted.split(".")
    return _plain(raw[section][key])


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, (list, tuple)) else v


def plan_for(cfg: Any, quick: bool = False) -> Plan:
    """Return the studies the main job runs around ``cfg`` (every study shrunk when ``quick``); a study
    whose settings miss the configuration's own gets it added (see :func:`_with_configured`)."""
    studies = [*_classifier_studies(cfg), *_two_tower_studies(cfg)]
    if quick:
        studies = [_quick(s) for s in studies]
    names = [s.name for s in studies]
    if len(set(names)) != len(names):
        raise ValueError(f"two studies share a name: {names}")
    return Plan(tuple(_with_configured(s, cfg) for s in studies))
