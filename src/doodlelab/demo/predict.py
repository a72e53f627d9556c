"""What every model says about one drawing, and why: probabilities, cosines, saliency.

The browser's strokes (screen coordinates) go through the dataset's own recipe,
:func:`~doodlelab.data.render.simplify` then :func:`~doodlelab.data.render.render`, so
the models see exactly the kind of 28x28 image they were trained on, and each run
predicts with its own ``eval.tta`` setting.

- **probabilities**: the softmax of the run's logits (averaged over the four 1-pixel
  shifts when the run uses test-time shifts), as ``doodlelab evaluate`` scores it;
- **cosines** (two-tower runs): the cosine between the image's embedding and every
  class word's embedding, read from the towers themselves (not from a softmax: a
  hinge-trained model's softmax is not a probability);
- **saliency**: d(score of the predicted class)/d(pixel) at the drawn image (no shifts),
  computed by the numpy core's own backward pass (a torch run's weights are loaded
  into its numpy twin; ``tests/twin/test_saliency.py`` proves it equals autograd).

Models are called under one process-wide lock: the backends set process-wide BLAS and
torch thread counts around every pass, so two requests must not interleave.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from doodlelab.demo.models import LoadedModel, all_classes
from doodlelab.geometry import SHAPE
from doodlelab.tasks.protocol import EmbeddingTask

PREDICT_LOCK = threading.Lock()


def cosines(task: EmbeddingTask, x: np.ndarray) -> np.ndarray:
    """Return the cosine (N, K) between images (N, 784) and every class word, for a two-tower task."""
    u = np.asarray(task.embed(x), dtype=np.float64)  # (N, E), unit rows
    v = np.asarray(task.class_embeddings(), dtype=np.float64)  # (K, E), unit rows
    return u @ v.T


def saliency(model: LoadedModel, x: np.ndarray, k: int) -> np.ndarray:
    """Return d logit_k / d pixel (28, 28) of one image x (1, 784), by the numpy core's backward."""
    assert model.numpy_task is not None, "load_model gives every model its numpy copy"
    return np.asarray(model.numpy_task.input_gradient(x, k), dtype=np.float64).reshape(SHAPE)


def explain(model: LoadedModel, x: np.ndarray) -> dict[str, Any]:
    """Return one model's answer for one image x (1, 784): probabilities, prediction, saliency, cosines."""
    from doodlelab.training.scoring import probabilities

    p = probabilities(model.task, x, tta=model.tta)[0]  # (K,) float64
    k = int(np.argmax(p))
    grad = saliency(model, x, k)  # (28, 28)
    task = model.task
    cos = cosines(task, x)[0] if isinstance(task, EmbeddingTask) else np.zeros(0)  # (K,)
    if not (np.isfinite(p).all() and np.isfinite(grad).all() and np.isfinite(cos).all()):
        # finite weights are checked at startup, inputs are in [0, 1]: this would be a bug
        raise RuntimeError(f"{model.name} gave non-finite numbers")
    answer: dict[str, Any] = {
        "name": model.name, "kind": model.kind, "backend": model.backend,
        "probabilities": {c: float(v) for c, v in zip(model.classes, p)},
        "prediction": model.classes[k],
        "saliency": grad.tolist(),
    }
    if isinstance(task, EmbeddingTask):
        answer["cosines"] = {c: float(v) for c, v in zip(model.classes, cos)}
    return answer


def predict(models: list[LoadedModel], strokes: list, *, raw: bool = True) -> dict[str, Any]:
    """Render the drawing once and return every model's answer (JSON-ready).

    ``strokes`` is a list of ``[[x...], [y...]]`` strokes in any coordinates (a
    browser's); ``raw=False`` means they are already in the dataset's simplified form
    (0..255). Returns ``{"image": (28, 28) ints 0..255, "models": [{"name", "kind",
    "backend", "probabilities": {class: p}, "prediction", "saliency": (28, 28) floats,
    ["cosines": {class: cos}]}], "classes": [...]}``.
    """
    from doodlelab.data.course import validate_images
    from doodlelab.data.render import render, simplify

    image = render(simplify(strokes) if raw else strokes)  # (28, 28) uint8
    x = validate_images(image[None], "drawing")  # (1, 784) float32 in [0, 1], as training saw
    with PREDICT_LOCK:
        answers = [explain(m, x) for m in models]
    return {"image": image.tolist(), "models": answers, "classes": all_classes(list(models))}
