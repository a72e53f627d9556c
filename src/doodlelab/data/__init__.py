"""The data layer: course-folder loader and validation, split, batches, augmentation.

Also here, each imported on use: :mod:`~doodlelab.data.wordvec` (GloVe word vectors),
:mod:`~doodlelab.data.render` (strokes to the dataset's 28x28 bitmaps) and
:mod:`~doodlelab.data.official.download` (official class bitmaps to a course-layout folder).
"""

from doodlelab.data.batches import iterate_minibatches, n_batches
from doodlelab.data.course import CLASSES, DataError, Split, load_classes, load_split, resolve_data_dir
from doodlelab.data.split import load_split_file, save_split, stratified_split

__all__ = [
    "CLASSES",
    "DataError",
    "Split",
    "iterate_minibatches",
    "load_classes",
    "load_split",
    "load_split_file",
    "n_batches",
    "resolve_data_dir",
    "save_split",
    "stratified_split",
]
