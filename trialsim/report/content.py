"""The report's content model: sections of text, notes, call-outs, tables and figures (no rendering)."""
from __future__ import annotations

from dataclasses import dataclass, field

from trialsim.report.figures import FigureFile
from trialsim.report.paragraph import Headline, Paragraph
from trialsim.report.references import Reference
from trialsim.report.tables import Table


@dataclass(frozen=True)
class Text:
    """A paragraph; ``style`` "lead" for the paste-ready justification."""

    text: str
    style: str = ""


@dataclass(frozen=True)
class Note:
    text: str


@dataclass(frozen=True)
class Callout:
    """A boxed warning (the allocation caveat)."""

    title: str
    text: str


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)  # Text, Note, Callout, Table, FigureFile
    id: str = ""


@dataclass
class Report:
    title: str
    subtitle: str
    headline: Headline
    sections: list[Section]
    justification: Paragraph
    tables: dict[str, Table]
    figures: list
    references: list[Reference] = field(default_factory=list)

    def all_text(self) -> str:
        """Every word of the report (no figure data): for checks and for finding cited names."""
        parts = [self.title, self.subtitle, self.headline.verdict] + [t for row in self.headline.rows for t in row]
        for s in self.sections:
            parts.append(s.title)
            for b in s.blocks:
                if isinstance(b, Table):
                    parts += [b.caption, b.notes, " ".join(map(str, b.frame.columns))]
                    parts += [str(v) for v in b.frame.to_numpy().ravel()]
                elif isinstance(b, FigureFile):
                    parts.append(b.caption)
                elif isinstance(b, Callout):
                    parts += [b.title, b.text]
                else:
                    parts.append(b.text)
        parts += [r.text() for r in self.references]
        return "\n".join(parts)


# ---------------------------------------------------------------------------------------------------
# layout shared by the writers: how wide a table's columns want to be
# ---------------------------------------------------------------------------------------------------
WIDE_COLUMNS = 8  # tables with this many columns or more go on landscape pages
WIDE_CHARS = 120  # ... and those whose columns want more characters than this in all


def _words(text: str) -> list[str]:
    return str(text).split()


def column_chars(t: Table, cap: int = 40) -> list[tuple[int, int]]:
    """Per column: (longest word, wanted width), in characters; the wanted width is the longest cell
    (header included) capped at ``cap``, and never less than the longest word (no word is broken)."""
    out = []
    for j, col in enumerate(t.frame.columns):
        cells = [str(col)] + [str(v) for v in t.frame.iloc[:, j]]
        word = max((len(w) for c in cells for w in _words(c)), default=1)
        longest = max((len(c) for c in cells), default=1)
        out.append((word, max(word, min(longest, cap))))
    return out


def is_wide(t: Table) -> bool:
    """Whether the table needs a landscape page (many columns, or columns that want much room)."""
    return len(t.frame.columns) >= WIDE_COLUMNS or sum(w for _, w in column_chars(t)) > WIDE_CHARS
