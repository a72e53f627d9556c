"""The main job, ``doodlelab run`` (and ``doodlelab report``): every experiment of the report, resumable.

- :mod:`~doodlelab.pipeline.steps`: the steps over one context, and the two subcommands;
- :mod:`~doodlelab.pipeline.ledger`: ``pipeline.json``, which steps to redo; the worker pool;
- :mod:`~doodlelab.pipeline.units`: the heavy units one worker runs (a run, the gradient check, a study row);
- :mod:`~doodlelab.pipeline.plan`: what the main job studies, question by question;
- :mod:`~doodlelab.pipeline.rows`: studies -> trained rows keyed by a hash of their settings;
- :mod:`~doodlelab.pipeline.layout`: the one owner of a results folder's layout;
- :mod:`~doodlelab.pipeline.report`: the Typst report that reads a results folder.
"""
