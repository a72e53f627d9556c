"""Files, safely: atomic writes, checked reads, one writer per folder.

- :mod:`~doodlelab.files.atomic`: write to a temporary name, then rename;
- :mod:`~doodlelab.files.checked`: every file doodlelab reads, checked before use;
- :mod:`~doodlelab.files.lock`: an exclusive lock beside a folder, signals held at a commit point;
- :mod:`~doodlelab.files.terminal`: whether stderr is a terminal (the progress-bar rule).
"""
