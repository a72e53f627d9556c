"""Run configuration: frozen dataclasses with defaults, loaded from TOML, overridden by ``--set``.

Every value is checked in ``__post_init__``; a bad value raises :class:`ConfigError`
whose message names the field (``optim.lr``) and the allowed range. The defaults are the
starting point of ``doodlelab run``'s studies, set to their picks on the stand-in data
(see ``docs/hyperparameters.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doodlelab.errors import UserError
from doodlelab.geometry import N_PIXELS
from doodlelab.kinds import CLASSIFIER, TWO_TOWER, Kind


class ConfigError(UserError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


def _check(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"config: {name} must be {rule} (got {value!r})")


# Resource limits: a model beyond them would exhaust the machine's memory before it learned
# anything (50 hidden layers of 8192 units reached 16.5 GB). The defaults use 0.54 M parameters.
MAX_LAYERS = 16  # hidden layers of one tower
MAX_WIDTH = 8192  # units of one hidden layer
MAX_PARAMETERS = 50_000_000  # both towers together: 200 MB of float32 weights, ~4x that to train
_MAX_WORD_DIM = 300  # the widest common GloVe vectors, for the word tower's first layer
_MIN_OUTPUTS = 5  # the course's five classes: the classifier's smallest output layer


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    _check(value in allowed, name, "one of " + ", ".join(allowed), value)


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how validation is carved out of train."""

    val_fraction: float = 0.1  # stratified share of train held out for validation

    def __post_init__(self) -> None:
        _check(0.0 < self.val_fraction < 0.5, "data.val_fraction", "in (0, 0.5)", self.val_fraction)


@dataclass(frozen=True)
class AugmentConfig:
    """Random affine distortion of training images (off at validation and test time)."""

    enabled: bool = True
    shift: float = 2.0  # max translation in pixels, uniform in [-shift, shift]
    rotate: float = 0.0  # max rotation in degrees
    scale: float = 0.0  # zoom uniform in [1 - scale, 1 + scale]
    shear: float = 0.0  # max shear angle in degrees
    flip: bool = False  # random horizontal flip with probability 1/2
    integer_shift: bool = True  # whole-pixel shifts in {-shift, ..., shift}: no resampling blur

    def __post_init__(self) -> None:
        _check(0.0 <= self.shift <= 8.0, "augment.shift", "in [0, 8] pixels", self.shift)
        _check(
            not self.integer_shift or float(self.shift).is_integer(),
            "augment.shift",
            "a whole number of pixels when augment.integer_shift is true",
            self.shift,
        )
        _check(0.0 <= self.rotate <= 45.0, "augment.rotate", "in [0, 45] degrees", self.rotate)
        _check(0.0 <= self.scale < 0.5, "augment.scale", "in [0, 0.5)", self.scale)
        _check(0.0 <= self.shear <= 30.0, "augment.shear", "in [0, 30] degrees", self.shear)


@dataclass(frozen=True)
class ModelConfig:
    """The MLP: hidden widths, activation, dropout and weight initialisation."""

    hidden: tuple[int, ...] = (512, 256)  # widths of the hidden layers
    activation: str = "relu"  # of every hidden layer
    dropout: float = 0.0  # after every hidden activation
    input_dropout: float = 0.0  # on the input pixels
    init: str = "he_normal"  # how the weights are drawn

    def __post_init__(self) -> None:
        from doodlelab.nn.init import SCHEMES
        from doodlelab.nn.modules import ACTIVATIONS

        _check(1 <= len(self.hidden) <= MAX_LAYERS, "model.hidden", f"a list of 1 to {MAX_LAYERS} widths",
               self.hidden)
        for h in self.hidden:
            _check(isinstance(h, int) and 1 <= h <= MAX_WIDTH, "model.hidden",
                   f"widths in [1, {MAX_WIDTH}]", h)
        _choice("model.activation", self.activation, tuple(ACTIVATIONS))
        _check(0.0 <= self.dropout < 1.0, "model.dropout", "in [0, 1)", self.dropout)
        _check(0.0 <= self.input_dropout < 1.0, "model.input_dropout", "in [0, 1)", self.input_dropout)
        _choice("model.init", self.init, SCHEMES)


@dataclass(frozen=True)
class OptimConfig:
    """SGD with momentum, regularisation and the learning-rate schedule."""

    lr: float = 0.05  # the base learning rate of the schedule
    momentum: float = 0.9  # torch.optim.SGD's convention: v = momentum * v + g
    nesterov: bool = False  # Nesterov's look-ahead step
    weight_decay: float = 0.0  # torch-style coupled decay on every parameter
    l2: float = 0.0  # explicit L2 penalty on weight matrices, added to the loss
    schedule: str = "cosine"  # how the learning rate moves; it advances every step, not every epoch
    step_size: int = 10  # epochs between decays (schedule = "step")
    gamma: float = 0.1  # decay factor (schedule = "step")
    min_lr: float = 0.0  # floor of the cosine schedule
    warmup_epochs: int = 0  # linear ramp from lr / (warmup + 1) up to lr

    def sgd_kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments of SGD, the same for ``nn.SGD`` and ``torch.optim.SGD``."""
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def __post_init__(self) -> None:
        from doodlelab.nn.optim import LRSchedule

        _check(0.0 < self.lr <= 10.0, "optim.lr", "in (0, 10]", self.lr)
        _check(0.0 <= self.momentum < 1.0, "optim.momentum", "in [0, 1)", self.momentum)
        _check(
            not (self.nesterov and self.momentum == 0.0),
            "optim.nesterov",
            "false when optim.momentum is 0",
            self.nesterov,
        )
        _check(0.0 <= self.weight_decay < 1.0, "optim.weight_decay", "in [0, 1)", self.weight_decay)
        _check(0.0 <= self.l2 < 1.0, "optim.l2", "in [0, 1)", self.l2)
        _choice("optim.schedule", self.schedule, LRSchedule.SHAPES)
        _check(self.step_size >= 1, "optim.step_size", ">= 1", self.step_size)
        _check(0.0 < self.gamma <= 1.0, "optim.gamma", "in (0, 1]", self.gamma)
        _check(0.0 <= self.min_lr <= self.lr, "optim.min_lr", "in [0, optim.lr]", self.min_lr)
        _check(self.warmup_epochs >= 0, "optim.warmup_epochs", ">= 0", self.warmup_epochs)


@dataclass(frozen=True)
class TrainConfig:
    """The fit loop: epochs, batches, seed, loss options, early stopping."""

    epochs: int = 60
    batch_size: int = 128  # images per SGD step
    seed: int = 0  # sets the split, the initial weights, the batch order, dropout and augmentation
    label_smoothing: float = 0.0  # of the cross-entropy targets
    patience: int = 0  # stop after this many epochs without a better val loss; 0 = never
    min_delta: float = 0.0  # how much val loss must fall to count as better
    # Load the weights of the best validation epoch at the end. Off by default: the cosine
    # schedule anneals to lr 0, and picking the best of 100 epochs on 500 validation
    # images mostly picks noise (a run's best epoch was 43 of 100, 0.4 pt above the end).
    restore_best: bool = False  # load the best validation epoch's weights at the end
    monitor: str = "val_accuracy"  # what "best" means for early stopping and restoring

    def __post_init__(self) -> None:
        _check(1 <= self.epochs <= 10_000, "train.epochs", "in [1, 10000]", self.epochs)
        _check(1 <= self.batch_size <= 65_536, "train.batch_size", "in [1, 65536]", self.batch_size)
        _check(0 <= self.seed < 2**32, "train.seed", "in [0, 2**32)", self.seed)
        _check(
            0.0 <= self.label_smoothing < 1.0,
            "train.label_smoothing",
            "in [0, 1)",
            self.label_smoothing,
        )
        _check(self.patience >= 0, "train.patience", ">= 0", self.patience)
        _check(self.min_delta >= 0, "train.min_delta", ">= 0", self.min_delta)
        _choice("train.monitor", self.monitor, ("val_loss", "val_accuracy"))


@dataclass(frozen=True)
class TwoTowerConfig:
    """The word-embedding classifier: an image MLP and a word-vector MLP into one space.

    The image tower is ``model`` (hidden widths, activation, dropout, init) ending in
    ``embed_dim`` outputs; the word tower maps each class name's word vector through
    ``text_hidden`` to ``embed_dim``. Both are scaled to unit length, so their dot
    product is a cosine. ``loss`` names the objective on the cosines (see
    :mod:`doodlelab.nn.embedding_losses`); ``logit_scale`` times the cosines are the
    scores that are averaged over shifts and ranked for ROC/PR (and the logits of
    ``softmax_ce``).
    """

    embed_dim: int = 16  # the size of the shared space
    text_hidden: tuple[int, ...] = (32,)  # the word tower's hidden widths (the image tower is [model])
    # hinge_rank (DeViSE ranking hinge), hardest_hinge, triplet, cosine_contrastive,
    # align_only (collapses; a demonstration), softmax_ce (a cross-entropy variant, outside
    # the assignment's Part II rule; for comparison only)
    loss: str = "hinge_rank"  # the objective on the cosines (docs/objectives.md)
    margin: float = 1.0  # hinge margin on cosines (cosine_contrastive: push threshold); chosen on validation
    logit_scale: float = 10.0  # scores = logit_scale * cosine (softmax_ce: its logits)
    align_weight: float = 0.0  # extra term: weight of mean(1 - cos(image, its class)); chosen on validation
    word_vectors: str = "glove-6b-50d"  # the packaged GloVe, or a path to a glove.*.txt file

    def __post_init__(self) -> None:
        _check(1 <= self.embed_dim <= 4096, "two_tower.embed_dim", "in [1, 4096]", self.embed_dim)
        _check(len(self.text_hidden) <= MAX_LAYERS, "two_tower.text_hidden",
               f"a list of at most {MAX_LAYERS} widths", self.text_hidden)
        for h in self.text_hidden:
            _check(1 <= h <= MAX_WIDTH, "two_tower.text_hidden", f"widths in [1, {MAX_WIDTH}]", h)
        from doodlelab.nn.embedding_losses import OBJECTIVES

        _choice("two_tower.loss", self.loss, OBJECTIVES)
        _check(0.0 <= self.margin <= 2.0, "two_tower.margin", "in [0, 2] (cosines differ by at most 2)",
               self.margin)
        _check(0.0 < self.logit_scale <= 100.0, "two_tower.logit_scale", "in (0, 100]",
               self.logit_scale)
        _check(0.0 <= self.align_weight <= 100.0, "two_tower.align_weight", "in [0, 100]",
               self.align_weight)
        _check(bool(self.word_vectors.strip()), "two_tower.word_vectors",
               "glove-6b-50d or the path of a GloVe text file", self.word_vectors)


@dataclass(frozen=True)
class EvalConfig:
    """How the trained model predicts on validation-free data (the test split, the demo)."""

    tta: bool = True  # average the softmax over the image and its four 1-pixel shifts


@dataclass(frozen=True)
class Config:
    """A whole run: one field per TOML section."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    two_tower: TwoTowerConfig = field(default_factory=TwoTowerConfig)

    def __post_init__(self) -> None:
        total = max(self.n_parameters().values())
        _check(total <= MAX_PARAMETERS, "model.hidden",
               f"a model of at most {MAX_PARAMETERS:,} parameters (these settings give {total:,})",
               list(self.model.hidden))

    def n_parameters(self) -> dict[Kind, int]:
        """Return the weights and biases of each kind's model (an upper bound for the word tower)."""
        t = self.two_tower
        image = [N_PIXELS, *self.model.hidden]
        return {CLASSIFIER: _mlp_parameters([*image, _MIN_OUTPUTS]),
                TWO_TOWER: _mlp_parameters([*image, t.embed_dim])
                + _mlp_parameters([_MAX_WORD_DIM, *t.text_hidden, t.embed_dim])}

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Return the resolved configuration as plain JSON-able dicts."""
        out: dict[str, dict[str, Any]] = {}
        for f in dataclasses.fields(self):
            section = dataclasses.asdict(getattr(self, f.name))
            out[f.name] = {k: list(v) if isinstance(v, tuple) else v for k, v in section.items()}
        return out


def _mlp_parameters(widths: Sequence[int]) -> int:
    """Return the weights and biases of an MLP with layer sizes ``widths``."""
    return sum((a + 1) * b for a, b in zip(widths, widths[1:]))


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(Config)}  # type: ignore[misc]
# Tables of the same TOML file (and ``--set`` keys) that another command reads and checks:
# ``[report]`` (author, student number, code link) belongs to doodlelab.pipeline.report.settings.
OTHER_SECTIONS = ("report",)


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Convert a TOML/JSON value to the field's declared type or raise ConfigError."""
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(name, typing.get_args(hint)[0], v) for v in value)
        if isinstance(value, int) and not isinstance(value, bool):
            return (value,)
    type_name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"config: {name} must be of type {type_name} (got {value!r})")


def build_config(values: dict[str, dict[str, Any]] | None = None) -> Config:
    """Return a Config from nested ``{section: {key: value}}`` (e.g. :meth:`Config.to_dict`'s output,
    a run's config.json); unknown keys are errors."""
    values = values or {}
    if not isinstance(values, dict):
        raise ConfigError(f"config: must be a table of [sections] (got {type(values).__name__})")
    for sname, section in values.items():
        if not isinstance(section, dict):
            raise ConfigError(f"config: {sname} must be a [section] table of settings (got {section!r:.40})")
    sections = {}
    for sname, cls in SECTIONS.items():
        given = dict(values.get(sname, {}) or {})
        hints = typing.get_type_hints(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        for key in given:
            if key not in known:
                raise ConfigError(
                    f"config: unknown key {sname}.{key}; known keys: {', '.join(sorted(known))}"
                )
        kwargs = {k: _coerce(f"{sname}.{k}", hints[k], v) for k, v in given.items()}
        sections[sname] = cls(**kwargs)
    for sname in values:
        if sname not in SECTIONS and sname not in OTHER_SECTIONS:
            raise ConfigError(
                f"config: unknown section [{sname}]; known sections: "
                f"{', '.join((*SECTIONS, *OTHER_SECTIONS))}"
            )
    return Config(**sections)


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse ``section.key=value`` (value in TOML syntax, bare words as strings)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. optim.lr=0.05")
    dotted, raw = text.split("=", 1)
    parts = dotted.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. optim.lr=0.05")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word such as relu or cosine
    return parts[0], parts[1], value


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> Config:
    """Return the Config from defaults, then the TOML file at ``path``, then ``overrides``."""
    values: dict[str, dict[str, Any]] = {}
    if path is not None:
        values = read_toml(Path(path))
        for sname, section in values.items():
            if not isinstance(section, dict):
                raise ConfigError(f"config file {path}: {sname} must be a [section] table")
    for text in overrides or []:
        sname, key, value = parse_override(text)
        values.setdefault(sname, {})[key] = value
    return build_config(values)


def read_toml(path: Path) -> dict[str, Any]:
    """Return the tables of a TOML file of at most 1 MB, UTF-8; ConfigError naming ``path`` otherwise.

    Every settings file is read here, also its tables other commands check (``[report]``).
    """
    from doodlelab.files.checked import open_bounded

    try:
        with open_bounded(path, 1 << 20, "config file") as fh:
            text = fh.read().decode("utf-8")
        return tomllib.loads(text)
    except UserError as exc:
        raise ConfigError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); "
                          "save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None


def add_config_args(p: argparse.ArgumentParser, config_help: str = "TOML file of settings",
                    set_help: str = "override one setting, e.g. optim.lr=0.05") -> None:
    """Add ``--config FILE.toml`` and repeatable ``--set SECTION.KEY=VALUE`` to a command's parser."""
    p.add_argument("--config", type=Path, metavar="FILE.toml", help=config_help)
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help=set_help)
