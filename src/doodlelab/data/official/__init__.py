"""The official Quick, Draw! bucket: class names, whole-file download, ranged sampling, ``doodlelab fetch``.

- :mod:`~doodlelab.data.official.class_names`: the 345 class names and the check of a user's names;
- :mod:`~doodlelab.data.official.download`: whole class files into a cache, bounded and locked;
- :mod:`~doodlelab.data.official.ranged`: n drawings of a class for about n x 784 bytes (HTTP Range);
- :mod:`~doodlelab.data.official.fetch`: ``doodlelab fetch``, a course-layout folder from the bucket;
- :mod:`~doodlelab.data.official.autofetch`: the main job on a fresh machine (no folder: fetch one).
"""
