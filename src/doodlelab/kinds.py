"""The names of what doodlelab trains: the two model kinds and the two backends.

A model *kind* is :data:`Kind`, ``"classifier"`` (MLP + softmax) or ``"two_tower"`` (an
image MLP and a word-vector MLP into one space); a *backend* is :data:`Backend`,
``"numpy"`` (the core written from scratch) or ``"torch"`` (its PyTorch twin). This module
is the only one that spells them: everyone else imports the constants, and what differs
between the kinds is asked of :mod:`doodlelab.training.registry` or of the task itself.
"""

from __future__ import annotations

from typing import Literal, get_args

Kind = Literal["classifier", "two_tower"]
Backend = Literal["numpy", "torch"]

KINDS: tuple[Kind, ...] = get_args(Kind)
BACKENDS: tuple[Backend, ...] = get_args(Backend)
CLASSIFIER: Kind = KINDS[0]
TWO_TOWER: Kind = KINDS[1]
NUMPY: Backend = BACKENDS[0]
TORCH: Backend = BACKENDS[1]
