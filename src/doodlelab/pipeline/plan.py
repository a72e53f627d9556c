"""What the main job studies: every question of the assignment as a list of validation studies.

A study is ``(name, kind, grid, what it asks[, seeds])``: the name's prefix files it under
the assignment's question (:func:`doodlelab.pipeline.rows.question_of`), every grid holds the
configuration's own value, and :mod:`doodlelab.pipeline.rows` turns studies into trained rows.
"""

from __future__ import annotations

from typing import Any

from doodlelab.kinds import CLASSIFIER, TWO_TOWER
from doodlelab.pipeline.rows import STUDY_EPOCHS

# One study: (name, model kind, grid, what it asks[, seeds]). The name's prefix files it under the
# assignment's question (see question_of); every grid holds the configuration's own value.
Sweep = tuple


def _classifier_studies(cfg: Any) -> list[Sweep]:
    m = cfg.model
    return [
        ("arch_hidden", CLASSIFIER, {"model.hidden": [[256], [512], [256, 128], [512, 256],
                                                         [1024, 512], [512, 256, 128]]},
         "depth and width of the hidden layers"),
        ("arch_activation", CLASSIFIER, {"model.activation": ["relu", "leaky_relu", "tanh", "sigmoid"]},
         "activation of the hidden layers"),
        ("optim_momentum", CLASSIFIER, {"optim.nesterov": [False], "optim.momentum": [0.0, 0.5, 0.9, 0.95]},
         "momentum without Nesterov"),  # Nesterov needs momentum > 0: a second grid
        ("optim_momentum_nesterov", CLASSIFIER,
         {"optim.nesterov": [True], "optim.momentum": [0.5, 0.9, 0.95]},
         "momentum with Nesterov"),
        ("optim_lr", CLASSIFIER, {"optim.lr": [0.01, 0.05, 0.2]}, "learning rate"),
        ("optim_batch", CLASSIFIER, {"train.batch_size": [32, 128, 512]}, "mini-batch size"),
        ("optim_epochs", CLASSIFIER, {"train.epochs": [5, STUDY_EPOCHS, 30]}, "number of epochs"),
        ("tried_augment", CLASSIFIER, {"augment.enabled": [True, False]},
         "random whole-pixel shifts of the training images"),
        ("tried_dropout", CLASSIFIER, {"model.dropout": sorted({0.0, m.dropout, 0.3})}, "dropout"),
        ("tried_decay", CLASSIFIER, {"optim.weight_decay": sorted({0.0, cfg.optim.weight_decay, 1e-3})},
         "weight decay"),
        ("tried_schedule", CLASSIFIER, {"optim.schedule": ["constant", "step", "cosine"]},
         "learning-rate schedule"),
    ]


def _two_tower_studies(cfg: Any) -> list[Sweep]:
    return [
        ("arch_image_tower", TWO_TOWER, {"model.hidden": [[256], [512, 256], [512, 256, 128]]},
         "image tower: hidden widths"),
        ("arch_word_tower", TWO_TOWER, {"two_tower.text_hidden": [[32], [64], [128, 64]]},
         "word tower: hidden widths"),
        ("arch_embed", TWO_TOWER, {"two_tower.embed_dim": [16, 64, 128]}, "size of the shared space"),
        ("optim_momentum_two_tower", TWO_TOWER,
         {"optim.nesterov": [False], "optim.momentum": [0.0, 0.5, 0.9]},
         "momentum without Nesterov"),
        ("optim_lr_two_tower", TWO_TOWER, {"optim.lr": [0.02, 0.05, 0.1]}, "learning rate"),
        ("loss_align", TWO_TOWER,
         {"two_tower.align_weight": sorted({0.0, cfg.two_tower.align_weight, 2.0})},
         "weight of the alignment term"),
        *loss_study(),
    ]


# The two-tower loss study (docs/loss_study.md): the ranking hinge at three margins, the align
# term on top of it at two, the other objectives at one margin each, the align term alone and
# the softmax (cross-entropy) for comparison; three seeds per point. Margins are on cosines
# (the triplet's on squared distances, 2 - 2 cos: twice as wide).
LOSS_STUDY_SEEDS = (0, 1, 2)
LOSS_STUDY: tuple[tuple[str, str, dict[str, list[Any]], str], ...] = (
    ("loss_hinge_rank", "hinge_rank", {"two_tower.margin": [0.1, 0.3, 1.0], "two_tower.align_weight": [0.0]},
     "the ranking hinge (DeViSE): its margin"),
    ("loss_hinge_rank_align", "hinge_rank", {"two_tower.margin": [0.1, 1.0], "two_tower.align_weight": [0.5]},
     "the ranking hinge with the align term on top"),
    ("loss_hardest_hinge", "hardest_hinge", {"two_tower.margin": [0.3], "two_tower.align_weight": [0.0]},
     "the hardest-negative hinge (structured SVM)"),
    ("loss_triplet", "triplet", {"two_tower.margin": [0.5], "two_tower.align_weight": [0.0]},
     "the triplet loss, one sampled negative class per image"),
    ("loss_cosine_contrastive", "cosine_contrastive",
     {"two_tower.margin": [0.0], "two_tower.align_weight": [0.0]},
     "the cosine contrastive loss: pull to 1, push below the margin"),
    ("loss_align_only", "align_only", {"two_tower.align_weight": [0.0]},
     "the align term alone (collapses: nothing pushes the classes apart)"),
    ("loss_softmax_ce", "softmax_ce", {"two_tower.align_weight": [0.0, 0.5]},
     "softmax cross-entropy on the cosines (a cross-entropy variant, outside Part II's rule; "
     "for comparison only)"),
)


def loss_study() -> list[Sweep]:
    """Return the two-tower loss study: one study per question, every objective in one of them."""
    return [(name, TWO_TOWER, {"two_tower.loss": [loss], **grid}, question, LOSS_STUDY_SEEDS)
            for name, loss, grid, question in LOSS_STUDY]


def sweeps_for(cfg: Any, quick: bool = False) -> tuple[Sweep, ...]:
    """Return the validation studies the pipeline runs around ``cfg`` (two tiny ones when ``quick``)."""
    if quick:
        return (("arch_hidden", CLASSIFIER, {"model.hidden": [[16], [32]]}, "width of the hidden layer"),
                ("optim_lr", CLASSIFIER, {"optim.lr": [0.05, 0.1]}, "learning rate"),  # shares a row
                ("loss_align", TWO_TOWER, {"two_tower.align_weight": [0.0, 0.5]},
                 "weight of the alignment term"))
    return (*_classifier_studies(cfg), *_two_tower_studies(cfg))
