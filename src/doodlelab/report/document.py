"""A report as a list of blocks, rendered twice: to self-contained HTML and to a PDF.

The blocks (:class:`Heading`, :class:`Para`, :class:`Bullets`, :class:`Table`,
:class:`Figures`, :class:`Code`) carry plain text and PNG bytes only, so both renderers
show exactly the same words and numbers. The HTML embeds every figure as a base64 PNG
and its CSS inline. The PDF is laid out with matplotlib alone (``PdfPages``: text placed
with ``fig.text``, wrapped by measured glyph widths, tables in a monospaced font and
split across pages with their header repeated, figures drawn with ``imshow``), so it
needs nothing beyond the venv; an HTML-to-PDF engine would need system libraries
(WeasyPrint: pango) or a browser.

:func:`markdown_blocks` reads the small Markdown subset the docs use (headings,
paragraphs, bullet lists, pipe tables, ``**bold**``/backticks stripped) into blocks.
"""

from __future__ import annotations

import base64
import html
import io
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Heading:
    """A section title; level 1 (section), 2 (subsection) or 3."""

    text: str
    level: int = 1
    anchor: str = ""


@dataclass
class Para:
    """A paragraph; ``style`` is ``text``, ``note`` (where the numbers come from) or ``warn``."""

    text: str
    style: str = "text"


@dataclass
class Bullets:
    """A bullet list of plain-text items."""

    items: list[str]


@dataclass
class Table:
    """A table of strings; numeric-looking cells are right-aligned."""

    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    """One PNG with its caption."""

    png: bytes
    caption: str = ""


@dataclass
class Figures:
    """One or more figures in a row (side by side when several)."""

    items: list[Figure]
    caption: str = ""


@dataclass
class Code:
    """Preformatted lines (commands)."""

    text: str


Block = Heading | Para | Bullets | Table | Figures | Code


@dataclass
class Document:
    """The whole report: a title, a subtitle and the blocks in order."""

    title: str
    subtitle: str = ""
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        """Append blocks in order."""
        self.blocks.extend(blocks)


_NUMERIC = re.compile(r"^[\s+\-−]*(\d[\d,]*\.?\d*(e[+-]?\d+)?|\.\d+|n/a|nan)\s*(%|s|x)?\s*$", re.I)


def _numeric(cell: str) -> bool:
    return bool(_NUMERIC.match(cell)) and cell.strip() != ""


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       max-width: 62rem; margin: 2rem auto; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.9rem; margin-bottom: .2rem; }
h2 { border-bottom: 2px solid #d0d7de; padding-bottom: .25rem; margin-top: 2.4rem; }
h3 { margin-top: 1.6rem; }
h4 { margin-top: 1.2rem; color: #333; }
.subtitle { color: #555; margin-top: 0; }
p.note { color: #555; font-size: .88rem; border-left: 3px solid #d0d7de; padding-left: .6rem; }
p.warn { color: #8a1c1c; font-weight: 600; }
table { border-collapse: collapse; margin: .6rem 0 1rem 0; font-size: .86rem; }
th, td { border: 1px solid #d0d7de; padding: .22rem .5rem; vertical-align: top; }
th { background: #f3f5f7; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; font-family: "DejaVu Sans Mono", monospace; }
caption { caption-side: bottom; text-align: left; color: #555; font-size: .82rem; padding-top: .3rem; }
figure { margin: .8rem 0 1.2rem 0; }
.row { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
.row figure { flex: 1 1 20rem; margin: 0; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .82rem; }
pre { background: #f6f8fa; padding: .7rem; overflow-x: auto; font-size: .8rem; }
nav ol { columns: 2; font-size: .92rem; }
"""


def render_html(doc: Document) -> str:
    """Return the document as one self-contained HTML page (inline CSS, base64 PNG figures)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(doc.title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<h1>{esc(doc.title)}</h1>",
    ]
    if doc.subtitle:
        parts.append(f'<p class="subtitle">{esc(doc.subtitle)}</p>')
    sections = [b for b in doc.blocks if isinstance(b, Heading) and b.level == 1]
    if sections:
        parts.append("<nav><ol>" + "".join(f'<li><a href="#{esc(h.anchor)}">{esc(h.text)}</a></li>'
                                           for h in sections) + "</ol></nav>")
    for block in doc.blocks:
        if isinstance(block, Heading):
            tag = f"h{min(block.level + 1, 6)}"
            anchor = f' id="{esc(block.anchor)}"' if block.anchor else ""
            parts.append(f"<{tag}{anchor}>{esc(block.text)}</{tag}>")
        elif isinstance(block, Para):
            cls = f' class="{block.style}"' if block.style != "text" else ""
            parts.append(f"<p{cls}>{esc(block.text)}</p>")
        elif isinstance(block, Bullets):
            ordered = all(re.match(r"\d+\. ", i) for i in block.items)
            style = ' style="list-style: none"' if ordered else ""
            parts.append(f"<ul{style}>" + "".join(f"<li>{esc(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            rows = ["<table>"]
            if block.caption:
                rows.append(f"<caption>{esc(block.caption)}</caption>")
            rows.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in block.header) + "</tr></thead>")
            rows.append("<tbody>")
            for row in block.rows:
                rows.append("<tr>" + "".join(
                    f'<td class="num">{esc(c)}</td>' if _numeric(c) else f"<td>{esc(c)}</td>" for c in row)
                    + "</tr>")
            rows.append("</tbody></table>")
            parts.append("\n".join(rows))
        elif isinstance(block, Figures):
            figs = []
            for fig in block.items:
                data = base64.b64encode(fig.png).decode("ascii")
                cap = f"<figcaption>{esc(fig.caption)}</figcaption>" if fig.caption else ""
                figs.append(f'<figure><img alt="{esc(fig.caption or "figure")}" '
                            f'src="data:image/png;base64,{data}">{cap}</figure>')
            body = "".join(figs)
            if len(block.items) > 1:
                body = f'<div class="row">{body}</div>'
            if block.caption:
                body += f"<figcaption>{esc(block.caption)}</figcaption>"
            parts.append(body)
        elif isinstance(block, Code):
            parts.append(f"<pre>{esc(block.text)}</pre>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# PDF

PAGE_W, PAGE_H = 8.27, 11.69  # A4 portrait, inches
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 0.65, 0.6, 0.7
TEXT_W = PAGE_W - 2 * MARGIN_X  # inches
MONO_EM = 0.602  # width of a DejaVu Sans Mono glyph in ems
_SIZES = {1: 15.0, 2: 12.0, 3: 10.5}
_BODY = 9.0


class _PdfLayout:
    """Flows blocks down A4 pages: a cursor in inches from the top, a new page when full."""

    def __init__(self, pdf: Any, title: str) -> None:
        import matplotlib.pyplot as plt
        from matplotlib.font_manager import FontProperties
        from matplotlib.textpath import TextToPath

        self.plt, self.pdf, self.title = plt, pdf, title
        self.measure = TextToPath()
        self.props = {(w, s): FontProperties(family="DejaVu Sans", weight=w, style=s)
                      for w in ("normal", "bold") for s in ("normal", "italic")}
        self.advances: dict = {}  # (weight, style) -> {char: advance at size 1}
        self.fig = None
        self.page = 0
        self.y = 0.0
        self.new_page()

    # pages and cursor

    def new_page(self) -> None:
        self.finish_page()
        self.fig = self.plt.figure(figsize=(PAGE_W, PAGE_H))
        self.page += 1
        self.y = MARGIN_TOP

    def finish_page(self) -> None:
        if self.fig is None:
            return
        self.fig.text(0.5, 0.35 / PAGE_H, f"{self.title}  ·  page {self.page}", ha="center", va="bottom",
                      fontsize=7, color="#888888")
        self.pdf.savefig(self.fig)
        self.plt.close(self.fig)
        self.fig = None

    def room(self) -> float:
        return PAGE_H - MARGIN_BOTTOM - self.y

    def ensure(self, height: float) -> None:
        if height > self.room() and self.y > MARGIN_TOP + 1e-6:
            self.new_page()

    # text

    def width_pt(self, text: str, size: float, weight: str = "normal", style: str = "normal") -> float:
        """Width of ``text`` in points: the sum of cached glyph advances (kerning ignored, +2 %)."""
        widths = self.advances.setdefault((weight, style), {})
        total = 0.0
        for ch in text:
            if ch not in widths:
                prop = self.props[(weight, style)].copy()
                prop.set_size(100)
                widths[ch] = self.measure.get_text_width_height_descent(
                    _pdf_safe(f"x{ch}x"), prop, ismath=False)[0] / 100 - self.x_width(weight, style)
            total += widths[ch]
        return total * size * 1.02

    def x_width(self, weight: str, style: str) -> float:
        """Advance of "xx" at size 1 (measuring "x?x" keeps spaces and edges honest)."""
        key = ("xx", weight, style)
        if key not in self.advances:
            prop = self.props[(weight, style)].copy()
            prop.set_size(100)
            self.advances[key] = self.measure.get_text_width_height_descent("xx", prop, ismath=False)[0] / 100
        return self.advances[key]

    def wrap(self, text: str, size: float, width_in: float, weight: str = "normal",
             style: str = "normal") -> list[str]:
        limit = width_in * 72
        lines: list[str] = []
        for paragraph in text.split("\n"):
            words = paragraph.split(" ")
            line = ""
            for word in words:
                candidate = f"{line} {word}" if line else word
                if line and self.width_pt(candidate, size, weight, style) > limit:
                    lines.append(line)
                    line = word
                else:
                    line = candidate
            lines.append(line)
        return lines

    def text_lines(self, lines: Sequence[str], size: float, *, x: float = MARGIN_X, weight: str = "normal",
                   style: str = "normal", color: str = "#1b1b1b", family: str = "DejaVu Sans",
                   leading: float = 1.32) -> None:
        step = size * leading / 72
        for line in lines:
            self.ensure(step)
            self.fig.text(x / PAGE_W, 1 - self.y / PAGE_H, _pdf_safe(line), fontsize=size, va="top",
                          ha="left", weight=weight, style=style, color=color, family=family)
            self.y += step

    def heading(self, block: Heading) -> None:
        size = _SIZES.get(block.level, 10.0)
        self.ensure(size * 2.2 / 72 + 0.6)  # keep a heading with some of what follows
        self.y += size * (0.9 if block.level == 1 else 0.6) / 72
        self.text_lines(self.wrap(block.text, size, TEXT_W, "bold"), size, weight="bold",
                        color="#0b3d6e" if block.level == 1 else "#1b1b1b")
        if block.level == 1:
            self.rule(color="#9fb3c8", width=0.8)
        self.y += 0.06

    def rule(self, color: str = "#bbbbbb", width: float = 0.5, x0: float = MARGIN_X,
             x1: float = PAGE_W - MARGIN_X) -> None:
        from matplotlib.lines import Line2D

        y = 1 - (self.y + 0.02) / PAGE_H
        self.fig.add_artist(Line2D([x0 / PAGE_W, x1 / PAGE_W], [y, y], color=color, lw=width,
                                   transform=self.fig.transFigure))
        self.y += 0.05

    def para(self, block: Para) -> None:
        style = {"text": ("normal", "normal", "#1b1b1b", _BODY), "note": ("normal", "italic", "#555555", 8.0),
                 "warn": ("bold", "normal", "#8a1c1c", _BODY)}[block.style]
        weight, slant, color, size = style
        self.text_lines(self.wrap(block.text, size, TEXT_W, weight, slant), size, weight=weight, style=slant,
                        color=color)
        self.y += 0.07

    def bullets(self, block: Bullets) -> None:
        for item in block.items:
            lines = self.wrap(item, _BODY, TEXT_W - 0.2)
            self.ensure(_BODY * 1.32 / 72)
            if not re.match(r"\d+\. ", item):  # an ordered item carries its number instead
                self.fig.text((MARGIN_X + 0.05) / PAGE_W, 1 - self.y / PAGE_H, "•", fontsize=_BODY, va="top")
            self.text_lines(lines, _BODY, x=MARGIN_X + 0.2)
        self.y += 0.07

    def code(self, block: Code) -> None:
        size = 6.8
        chars = int(TEXT_W * 72 / (size * MONO_EM))
        lines = []
        for line in block.text.split("\n"):
            lines += textwrap.wrap(line, chars, subsequent_indent="    ", break_on_hyphens=False,
                                   break_long_words=True) or [""]
        self.text_lines(lines, size, family="DejaVu Sans Mono", color="#222222", leading=1.28)
        self.y += 0.08

    def table(self, block: Table) -> None:
        ncol = len(block.header)
        cells = [[str(c) for c in row] + [""] * (ncol - len(row)) for row in block.rows]
        widths = [max([len(block.header[j])] + [len(r[j]) for r in cells]) for j in range(ncol)]
        gap = 2
        size = 8.0
        max_chars = lambda s: int(TEXT_W * 72 / (s * MONO_EM))  # noqa: E731
        while sum(widths) + gap * (ncol - 1) > max_chars(size) and size > 6.3:
            size -= 0.1
        while sum(widths) + gap * (ncol - 1) > max_chars(size):
            j = max(range(ncol), key=widths.__getitem__)
            if widths[j] <= 6:
                break
            widths[j] -= 1
        numeric = [all(_numeric(r[j]) or r[j] == "" for r in cells) and any(r[j] for r in cells)
                   for j in range(ncol)]

        def lines_of(row: list[str], head: bool = False) -> list[str]:
            wrapped = [textwrap.wrap(c, widths[j], break_long_words=True, break_on_hyphens=False) or [""]
                       for j, c in enumerate(row)]
            height = max(len(w) for w in wrapped)
            out = []
            for k in range(height):
                parts = []
                for j, w in enumerate(wrapped):
                    piece = w[k] if k < len(w) else ""
                    right = numeric[j] and (not head or len(w) == 1)
                    parts.append(piece.rjust(widths[j]) if right else piece.ljust(widths[j]))
                out.append((" " * gap).join(parts).rstrip())
            return out

        step = size * 1.3 / 72
        header = lines_of(list(block.header), head=True)
        total_w = min(TEXT_W, (sum(widths) + gap * (ncol - 1)) * size * MONO_EM / 72 + 0.05)

        def draw_header() -> None:
            self.text_lines(header, size, weight="bold", family="DejaVu Sans Mono", leading=1.3)
            self.rule(x1=MARGIN_X + total_w)

        self.ensure(step * (len(header) + min(3, len(cells) + 1)) + 0.1)
        draw_header()
        for row in cells:
            lines = lines_of(row)
            if step * len(lines) > self.room():
                self.new_page()
                draw_header()
            self.text_lines(lines, size, family="DejaVu Sans Mono", leading=1.3)
        self.rule(x1=MARGIN_X + total_w)
        if block.caption:
            self.text_lines(self.wrap(block.caption, 7.5, TEXT_W, style="italic"), 7.5, style="italic",
                            color="#555555")
        self.y += 0.1

    def figures(self, block: Figures) -> None:
        from matplotlib.image import imread

        n = len(block.items)
        gap = 0.15
        cell_w = (TEXT_W - gap * (n - 1)) / n
        images = [imread(io.BytesIO(f.png), format="png") for f in block.items]
        max_h = (PAGE_H - MARGIN_TOP - MARGIN_BOTTOM) * 0.62
        sizes = []
        for img in images:
            h_px, w_px = img.shape[:2]
            w = min(cell_w, w_px / 110, TEXT_W * 0.8)  # never enlarge beyond the PNG's own size
            h = w * h_px / w_px
            if h > max_h:
                w, h = w * max_h / h, max_h
            sizes.append((w, h))
        caps = [self.wrap(f.caption, 7.5, cell_w, style="italic") if f.caption else [] for f in block.items]
        cap_h = max(len(c) for c in caps) * 7.5 * 1.3 / 72
        height = max(h for _, h in sizes)
        self.ensure(height + cap_h + 0.1)
        top = self.y
        for k, (img, (w, h), cap) in enumerate(zip(images, sizes, caps)):
            x = MARGIN_X + k * (cell_w + gap) + (cell_w - w) / 2
            ax = self.fig.add_axes((x / PAGE_W, 1 - (top + h) / PAGE_H, w / PAGE_W, h / PAGE_H))
            ax.imshow(img, interpolation="antialiased")
            ax.set_axis_off()
            self.y = top + height + 0.05
            self.text_lines(cap, 7.5, x=MARGIN_X + k * (cell_w + gap), style="italic", color="#555555")
        self.y = top + height + 0.05 + cap_h
        if block.caption:
            self.text_lines(self.wrap(block.caption, 7.5, TEXT_W, style="italic"), 7.5, style="italic",
                            color="#555555")
        self.y += 0.12


def _pdf_safe(text: str) -> str:
    """Escape what matplotlib would read as mathtext (``$...$``)."""
    return text.replace("$", r"\$")


def render_pdf(doc: Document) -> bytes:
    """Return the document as PDF bytes, A4 pages laid out by matplotlib (PdfPages)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.backends.backend_pdf import PdfPages

    buf = io.BytesIO()
    with PdfPages(buf, metadata={"Title": doc.title, "Creator": "doodlelab.report"}) as pdf:
        layout = _PdfLayout(pdf, doc.title)
        layout.text_lines(layout.wrap(doc.title, 20, TEXT_W, "bold"), 20, weight="bold", color="#0b3d6e")
        if doc.subtitle:
            layout.text_lines(layout.wrap(doc.subtitle, 9.5, TEXT_W), 9.5, color="#555555")
        layout.y += 0.15
        for block in doc.blocks:
            if isinstance(block, Heading):
                if block.level == 1 and layout.y > PAGE_H * 0.55:
                    layout.new_page()  # a section starting low on a page starts on the next one
                layout.heading(block)
            elif isinstance(block, Para):
                layout.para(block)
            elif isinstance(block, Bullets):
                layout.bullets(block)
            elif isinstance(block, Table):
                layout.table(block)
            elif isinstance(block, Figures):
                layout.figures(block)
            elif isinstance(block, Code):
                layout.code(block)
        layout.finish_page()
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Markdown (the subset docs/*.md use)

_ITEM = re.compile(r"^([-*]|\d+\.)\s+")
_INLINE = re.compile(r"\*\*(.+?)\*\*|`([^`]+)`|\[([^\]]+)\]\([^)]+\)")


def _plain(text: str) -> str:
    """Strip **bold**, `code` and [links](url) down to their text; unescape ``\\|``."""
    return _INLINE.sub(lambda m: m.group(1) or m.group(2) or m.group(3), text).replace("\\|", "|").strip()


def _cells(line: str) -> list[str]:
    inner = line.strip().strip("|")
    return [_plain(c) for c in re.split(r"(?<!\\)\|", inner)]


def markdown_blocks(text: str, level_offset: int = 0) -> list[Block]:
    """Return the blocks of a Markdown text: headings (shifted by ``level_offset``), paragraphs,
    bullet lists and pipe tables. Code fences are kept as :class:`Code`."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Para(_plain(" ".join(s.strip() for s in para))))
            para.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            flush()
            i += 1
        elif stripped.startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            blocks.append(Code("\n".join(lines[i + 1 : j])))
            i = j + 1
        elif stripped.startswith("#"):
            flush()
            hashes = len(stripped) - len(stripped.lstrip("#"))
            blocks.append(Heading(_plain(stripped[hashes:]), min(3, hashes + level_offset)))
            i += 1
        elif stripped.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(lines[i])
                i += 1
            body = [r for r in rows[1:] if not re.fullmatch(r"\|?[\s:\-|]+\|?", r.strip())]
            blocks.append(Table(_cells(rows[0]), [_cells(r) for r in body]))
        elif _ITEM.match(stripped):
            flush()
            items: list[str] = []
            while i < len(lines) and lines[i].strip():
                s = lines[i].strip()
                if m := _ITEM.match(s):
                    number = m.group(1)  # "1." of an ordered list is kept as the item's label
                    items.append((number + " " if number[0].isdigit() else "") + s[m.end():])
                elif items:
                    items[-1] += " " + s
                i += 1
            blocks.append(Bullets([_plain(t) for t in items]))
        else:
            para.append(line)
            i += 1
    flush()
    return blocks
