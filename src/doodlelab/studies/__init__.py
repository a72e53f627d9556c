"""Studies: experiments built on the fit loop and the tasks, each also a ``doodlelab`` subcommand.

- :mod:`~doodlelab.studies.gradcheck`: numpy backprop vs torch autograd on the first batches;
- :mod:`~doodlelab.studies.sweep`: grids of settings judged on the validation split;
- :mod:`~doodlelab.studies.zeroshot`: classes recognised through their word vectors alone;
- :mod:`~doodlelab.studies.compare`: two finished runs side by side;
- :mod:`~doodlelab.studies.bench`: seconds per epoch of numpy, torch and scikit-learn.

Each module has ``add_parser`` and ``command`` for its subcommand.
"""
