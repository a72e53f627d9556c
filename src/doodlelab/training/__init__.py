"""Training and scoring any task: the fit loop, the (kind, backend) registry, metrics, figures.

- :mod:`~doodlelab.training.fit`: THE fit loop (batches, schedule, history, early stop, checkpoints);
- :mod:`~doodlelab.training.registry`: (kind, backend) -> task class; the one place outside twin/
  that imports torch;
- :mod:`~doodlelab.training.scoring`: predictions (with test-time shifts) and test metrics of a task;
- :mod:`~doodlelab.training.metrics`: the scikit-learn metrics;
- :mod:`~doodlelab.training.figures`: matplotlib figures, each with the CSV of its numbers.
"""
