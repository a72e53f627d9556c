"""The GloVe text-file reader: ``word v1 ... vD`` per line, streamed, hashed and checked.

The file is read in 4 MB blocks and hashed (SHA-256) as it is read. Numbers are parsed in
chunks by ``np.loadtxt``'s C parser; only when a chunk fails are its rows re-parsed one at
a time, to name the line in the error. See :mod:`doodlelab.data.wordvec` for the format
rules (optional word2vec header, LF or CRLF, duplicate words, words with spaces).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from doodlelab.errors import UserError

_BLOCK_BYTES = 1 << 22  # read and hash 4 MB at a time
_CHUNK_ROWS = 8192  # rows per np.loadtxt call
MAX_TEXT_BYTES = 8 << 30  # a GloVe text file: glove.840B.300d.txt, the largest published, is 5.6 GB
MAX_LINE_BYTES = 1 << 20  # one word and its numbers: 300 dimensions take ~3 KB


class WordVectorError(UserError):
    """A word-vector source is missing or malformed, or a class name has no vector."""


class GloveReader:
    """One pass over a GloVe text file: ``read()`` returns (words, float32 (N, D))."""

    def __init__(self, path: Path, keep: set[str] | None) -> None:
        self.path = path
        self.keep = keep
        self.sha256 = hashlib.sha256()
        self.dim: int | None = None
        self.dim_from = ""  # where dim was set, for messages: "line 1" or "the header on line 1"
        self.header_rows: int | None = None
        self.n_rows = 0

    def fail(self, lineno: int, what: str) -> WordVectorError:
        return WordVectorError(f"{self.path}, line {lineno}: {what}")

    def read(self) -> tuple[list[str], np.ndarray]:
        keep = self.keep
        index: dict[str, int] = {}
        chunk_words: list[str] = []
        chunk_rests: list[str] = []
        chunk_lines: list[int] = []
        parsed: list[np.ndarray] = []
        spaces = -1  # spaces in a regular row (= dim); -1 sends the first line to _odd_line
        n_rows = 0
        for start, lines in self._blocks():
            for i, line in enumerate(lines):
                if line.count(" ") == spaces:
                    word, _, rest = line.partition(" ")
                else:
                    got = self._odd_line(line, start + i)
                    spaces = -1 if self.dim is None else self.dim
                    if got is None:
                        continue
                    word, rest = got
                n_rows += 1
                if keep is not None and word not in keep:
                    continue
                if word in index:
                    continue  # duplicate: the first one wins
                index[word] = len(index)
                chunk_words.append(word)
                chunk_rests.append(rest)
                chunk_lines.append(start + i)
                if len(chunk_rests) >= _CHUNK_ROWS:
                    parsed.append(self._parse(chunk_words, chunk_rests, chunk_lines))
                    chunk_words, chunk_rests, chunk_lines = [], [], []
        if chunk_rests:
            parsed.append(self._parse(chunk_words, chunk_rests, chunk_lines))
        self.n_rows = n_rows
        if self.dim is None or (n_rows == 0 and self.header_rows is None):
            raise WordVectorError(f"{self.path} holds no word vectors (expected lines 'word v1 v2 ... vD')")
        if self.header_rows is not None and self.header_rows != n_rows:
            raise self.fail(
                1, f"the header says {self.header_rows} words but the file has {n_rows}; is it truncated?"
            )
        matrix = np.concatenate(parsed) if parsed else np.empty((0, self.dim), dtype=np.float32)
        return list(index), matrix

    def _blocks(self) -> Iterator[tuple[int, list[str]]]:
        """Yield (line number of the first line, decoded lines) per block, hashing every byte.

        The file must be a regular file of at most MAX_TEXT_BYTES (never a device such as
        /dev/zero, which was read forever), and no line may be longer than MAX_LINE_BYTES.
        """
        from doodlelab.files.checked import open_bounded

        try:
            fh = open_bounded(self.path, MAX_TEXT_BYTES, "word-vector file")
        except UserError as exc:
            raise WordVectorError(str(exc)) from None
        with fh:
            lineno = 1
            tail = b""
            first = True
            total = 0
            while True:
                block = fh.read(_BLOCK_BYTES)
                total += len(block)
                if total > MAX_TEXT_BYTES:
                    raise WordVectorError(f"word-vector file {self.path} grew past {MAX_TEXT_BYTES} bytes")
                if first:
                    self._check_magic(block)
                    if block.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte-order mark from some editors
                        self.sha256.update(block[:3])
                        block = block[3:]
                    first = False
                if not block:
                    break
                self.sha256.update(block)
                block = tail + block
                cut = block.rfind(b"\n")
                if cut < 0:
                    if len(block) > MAX_LINE_BYTES:
                        raise self.fail(lineno, f"is longer than {MAX_LINE_BYTES} bytes: not GloVe text")
                    tail = block
                    continue
                tail = block[cut + 1 :]
                lines = self._decode(block[: cut + 1], lineno)
                yield lineno, lines
                lineno += len(lines)
            if tail:
                yield lineno, self._decode(tail, lineno)

    def _check_magic(self, head: bytes) -> None:
        kinds = {
            b"\x1f\x8b": "gzip-compressed; unpack it first (gunzip)",
            b"PK\x03\x04": "a zip archive; unzip it and give one of the .txt files inside",
            b"\x93NUMPY": "a NumPy .npy file, not a GloVe text file",
        }
        for magic, what in kinds.items():
            if head.startswith(magic):
                raise WordVectorError(f"word-vector file {self.path} is {what}")

    def _decode(self, data: bytes, lineno: int) -> list[str]:
        if b"\0" in data:
            bad = lineno + data.count(b"\n", 0, data.index(b"\0"))
            raise self.fail(bad, "holds a NUL byte: this is not a text file (expected a GloVe .txt file)")
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        data = data[:-1] if data.endswith((b"\n", b"\r")) else data  # the last line's end
        try:
            return data.decode("utf-8").split("\n")
        except UnicodeDecodeError as exc:
            bad = lineno + data.count(b"\n", 0, exc.start)
            raise self.fail(bad, "is not UTF-8 text (GloVe files are UTF-8)") from None

    def _odd_line(self, line: str, lineno: int) -> tuple[str, str] | None:
        """Slow path for a line without exactly ``dim`` spaces: blank, header, first row or a problem."""
        line = line.rstrip()
        if not line:
            return None  # blank line
        fields = line.split(" ")
        if self.dim is None:
            if len(fields) == 2 and all(f.isascii() and f.isdigit() for f in fields):
                self.header_rows, self.dim = int(fields[0]), int(fields[1])
                self.dim_from = f"the header on line {lineno}"
                if self.dim < 1:
                    raise self.fail(lineno, f"the header '{line}' gives dimension 0")
                return None
            if "\t" in line:
                raise self.fail(lineno, "separates values with tabs; GloVe files use single spaces")
            if len(fields) < 2:
                raise self.fail(lineno, f"expected a word followed by numbers, found {line[:40]!r}")
            self.dim, self.dim_from = len(fields) - 1, f"line {lineno}"
        dim = self.dim
        if len(fields) - 1 == dim:
            return fields[0], " ".join(fields[1:])
        if len(fields) - 1 > dim and not _is_number(fields[1]) and all(_is_number(f) for f in fields[-dim:]):
            return " ".join(fields[:-dim]), " ".join(fields[-dim:])  # a word with spaces (glove.840B)
        raise self.fail(
            lineno,
            f"{fields[0][:40]!r} has {len(fields) - 1} values, expected {dim} (as on {self.dim_from}); "
            "is the file truncated or are several files mixed?",
        )

    def _parse(self, words: list[str], rests: list[str], linenos: list[int]) -> np.ndarray:
        """Parse rows of ``dim`` space-separated numbers: float32 (len(rests), dim)."""
        out = _loadtxt(rests, self.dim)
        if out is not None and np.isfinite(out).all():
            return out
        for word, rest, lineno in zip(words, rests, linenos):  # find the culprit, one row at a time
            row = _loadtxt([rest], self.dim)
            if row is not None and np.isfinite(row).all():
                continue
            for j, tok in enumerate(rest.split(" "), start=1):
                if not _is_number(tok):
                    raise self.fail(lineno, f"value {j} of {word[:40]!r} is {tok[:40]!r}, not a number")
                if not math.isfinite(float(tok)):
                    raise self.fail(lineno, f"value {j} of {word[:40]!r} is {tok!r}; vectors must be finite")
            raise self.fail(lineno, f"the numbers of {word[:40]!r} cannot be parsed")
        raise self.fail(linenos[0], "the numbers cannot be parsed")  # not reached: a row above fails


def _loadtxt(rests: list[str], dim: int | None) -> np.ndarray | None:
    try:
        out = np.loadtxt(rests, dtype=np.float32, delimiter=" ", comments=None, quotechar=None, ndmin=2)
    except ValueError:
        return None
    return out if out.shape == (len(rests), dim) else None


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True
