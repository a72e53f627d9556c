"""A trained task's predictions and test metrics, with the configured prediction rule (``eval.tta``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from doodlelab.config import Config
from doodlelab.data.augment import TTA_SHIFTS, tta_view
from doodlelab.data.course import Split
from doodlelab.nn.losses import softmax
from doodlelab.tasks.protocol import Task

TTA_CHUNK_ROWS = 2048  # test rows per step: one shifted view of them is 6.4 MB of float32


def view_probabilities(task: Task, x: np.ndarray, tta: bool = False,
                       chunk: int = TTA_CHUNK_ROWS) -> list[np.ndarray]:
    """Return float64 class probabilities (N, K) per view: the images, plus their shifts if ``tta``.

    The images are read ``chunk`` rows at a time and each shifted view of a chunk is made,
    scored and dropped before the next, so memory holds one view of one chunk, not five
    copies of N images (the peak of a training process on a large folder was here).
    """
    shifts = TTA_SHIFTS if tta else ((0, 0),)
    parts: list[list[np.ndarray]] = [[] for _ in shifts]
    for start in range(0, x.shape[0], chunk):
        block = x[start : start + chunk]
        for part, shift in zip(parts, shifts):
            part.append(softmax(task.logits(tta_view(block, shift)).astype(np.float64)))
    return [np.concatenate(part) for part in parts]


def probabilities(task: Task, x: np.ndarray, tta: bool = False) -> np.ndarray:
    """Return class probabilities (N, K) in float64 from the task's eval-mode logits.

    With ``tta`` the softmax is averaged over the image and its four 1-pixel shifts.
    """
    views = view_probabilities(task, x, tta)
    return sum(views) / len(views)


def score_on_test(task: Task, test: Split, cfg: Config) -> tuple[dict[str, Any], np.ndarray]:
    """Return (metrics, probabilities (N, K)) on ``test`` with the configured prediction rule.

    When test-time augmentation is on, ``metrics["without_tta"]`` holds the scalar
    metrics of the plain prediction too, so its contribution is visible.
    """
    from doodlelab.training.metrics import SCALAR_KEYS, classification_metrics

    views = view_probabilities(task, test.x, tta=cfg.eval.tta)
    probs = sum(views) / len(views)
    metrics = classification_metrics(test.y, probs, test.classes)
    metrics["tta"] = cfg.eval.tta
    if cfg.eval.tta:
        plain = classification_metrics(test.y, views[0], test.classes)  # views[0]: the images as given
        metrics["without_tta"] = {k: plain[k] for k in SCALAR_KEYS}
    return metrics, probs


def summary_line(metrics: dict[str, Any]) -> str:
    """Return the scalar test metrics as one ``name=value`` line (and the accuracy without shifts)."""
    from doodlelab.training.metrics import SCALAR_KEYS

    line = "  ".join(f"{k}={metrics[k]:.4f}" for k in SCALAR_KEYS if metrics.get(k) is not None)
    if "without_tta" in metrics:
        line += f"  (without test-time shifts: accuracy={metrics['without_tta']['accuracy']:.4f})"
    return line
