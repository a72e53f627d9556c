"""Configuration: defaults, TOML, --set overrides and range checks naming the field."""

from __future__ import annotations

import pytest

from doodlelab.config import Config, ConfigError, build_config, load_config, parse_override


def test_defaults_round_trip_through_dict():
    cfg = Config()
    assert build_config(cfg.to_dict()) == cfg


def test_toml_then_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[optim]\nlr = 0.2\nschedule = "step"\n[model]\nhidden = [32, 16]\n')
    cfg = load_config(path, ["optim.lr=0.01", "train.epochs=3", "model.activation=tanh",
                             "optim.nesterov=false", "model.hidden=[8]"])
    assert cfg.optim.lr == 0.01 and cfg.optim.schedule == "step"
    assert cfg.train.epochs == 3 and cfg.model.activation == "tanh"
    assert cfg.optim.nesterov is False and cfg.model.hidden == (8,)


def test_int_is_accepted_for_float_and_integral_float_for_int():
    cfg = load_config(None, ["optim.lr=1", "train.epochs=4.0"])
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.train.epochs == 4


@pytest.mark.parametrize(
    "override,field",
    [
        ("optim.lr=-1", "optim.lr"),
        ("optim.lr=0", "optim.lr"),
        ("optim.momentum=1.5", "optim.momentum"),
        ("train.epochs=0", "train.epochs"),
        ("train.batch_size=0", "train.batch_size"),
        ("train.epochs=ten", "train.epochs"),
        ("model.activation=swish", "model.activation"),
        ("model.hidden=[]", "model.hidden"),
        ("model.hidden=[0]", "model.hidden"),
        ("model.dropout=1.0", "model.dropout"),
        ("model.init=zeros", "model.init"),
        ("data.val_fraction=0.9", "data.val_fraction"),
        ("optim.schedule=linear", "optim.schedule"),
        ("optim.nesterov=yes", "optim.nesterov"),
        ("augment.rotate=90", "augment.rotate"),
        ("train.monitor=accuracy", "train.monitor"),
        ("optim.min_lr=1.0", "optim.min_lr"),
    ],
)
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(None, [override])


@pytest.mark.parametrize("text", ["optim.lr", "lr=0.1", "a.b.c=1", ".x=1"])
def test_malformed_override(text):
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override(text)


def test_unknown_key_and_section(tmp_path):
    with pytest.raises(ConfigError, match="unknown key optim.learning_rate"):
        load_config(None, ["optim.learning_rate=0.1"])
    with pytest.raises(ConfigError, match=r"unknown section \[optimizer\]"):
        load_config(None, ["optimizer.lr=0.1"])


def test_bad_toml_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[optim\nlr = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    path.write_text("optim = 3\n")
    with pytest.raises(ConfigError, match="section"):
        load_config(path)


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        Config().optim.lr = 3  # type: ignore[misc]


def test_integer_shift_needs_a_whole_number_of_pixels():
    assert load_config(None, ["augment.integer_shift=true", "augment.shift=2"]).augment.shift == 2
    with pytest.raises(ConfigError, match=r"augment\.shift.*whole number"):
        load_config(None, ["augment.integer_shift=true", "augment.shift=1.5"])
