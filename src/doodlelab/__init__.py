"""doodlelab: deep learning from first principles on Quick, Draw! doodles."""

__version__ = "0.1.0"
