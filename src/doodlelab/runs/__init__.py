"""One run: a folder holding one trained model and its evidence.

- :mod:`~doodlelab.runs.folder`: :class:`~doodlelab.runs.folder.RunFolder`, the one owner of a run
  folder's files (atomic, locked, resumable);
- :mod:`~doodlelab.runs.train_command`: ``doodlelab train``, prepare -> fit -> a finished run folder;
- :mod:`~doodlelab.runs.evaluate_command`: ``doodlelab evaluate``, a run's model on a folder's test files.
"""
