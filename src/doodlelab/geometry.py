"""The course's image geometry: square grayscale doodles of :data:`SIDE` x :data:`SIDE` pixels.

A model sees an image as one row of :data:`N_PIXELS` values (``(N, 784)`` in shape
comments); files and figures hold it as :data:`SHAPE` (``(N, 28, 28)``). Every other
module asks here instead of writing the numbers again (the numpy core in ``nn/`` never
needs them: a layer takes its sizes as arguments).
"""

from __future__ import annotations

SIDE = 28  # pixels per row and per column
SHAPE = (SIDE, SIDE)  # one image as files and figures hold it
N_PIXELS = SIDE * SIDE  # one image as a model's input row
