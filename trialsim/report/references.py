"""References: citation keys in configs and the methods a report uses, resolved to full entries.

The project's references live in one file, ``trialsim/references.toml`` (citation key -> authors,
title, journal, year, volume, pages, DOI, PMID, PMCID, URL, note). A config cites a source by its key
in square brackets, in a value's comment or a ``source`` string (``OR 2.04 [qu2015]``); the
schema's defaults cite numbered sections of the project's evidence notes (``[3b]``), which the file's
``[sections]`` table maps to keys. :class:`Citations` resolves both to author-year citations
(``[Qu et al. 2015]``) and collects what a report cites, so its reference list holds exactly the
sources its text and tables use, plus the methods it names (``[methods]``).
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterable

REFERENCES_FILE = Path(__file__).resolve().parents[1] / "references.toml"
KEY = r"[a-z][a-z0-9_]*"
# "[qu2015]", "[qu2015, hu2017]" or "[qu2015; hu2017]"
CITATION = re.compile(rf"\[\s*({KEY}(?:\s*[,;]\s*{KEY})*)\s*\]")
# "[3b]": a numbered section of the evidence notes (the schema's defaults cite them)
SECTION = re.compile(r"\[(\d{1,2}[a-z]?)\]")


@dataclass(frozen=True)
class Reference:
    """One source. ``text()`` is the full entry, ``short`` the in-text citation ("Qu et al. 2015")."""

    key: str
    authors: str = ""
    title: str = ""
    journal: str = ""
    year: str = ""
    volume: str = ""
    pages: str = ""
    doi: str = ""
    pmid: str = ""
    pmcid: str = ""
    url: str = ""
    note: str = ""
    cite: str = ""
    verify: str = ""  # details the project's sources mark as approximate or unverified (never printed in the entry)

    @property
    def short(self) -> str:
        if self.cite:
            return self.cite
        names = _surnames(self.authors)
        if not names:
            return f"{self.title or self.key} {self.year}".strip()
        if len(names) == 1:
            who = names[0]
        elif len(names) == 2 and not _et_al(self.authors):
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        if len(names) == 1 and _et_al(self.authors):
            who = f"{names[0]} et al."
        return f"{who} {self.year}".strip()

    def text(self) -> str:
        """The full reference: authors. Title. Journal. Year;volume:pages. doi/PMID/PMCID/URL. Note.

        An entry cited by a label that is not its authors' name ("NCT06536712", "BMC Surg 2011") starts with that
        label, so that the reader finds it where the list's order puts it; a year told apart from another of the
        same authors ("2007a") prints as cited."""
        parts = []
        names = _surnames(self.authors)
        named = (names and self.cite.startswith(names[0])) or self.title.startswith(self.cite) or self.authors.startswith(self.cite)
        if self.cite and not named:
            parts.append(self.cite if self.cite.endswith(".") else self.cite + ".")
        for value in (self.authors, self.title):
            if value:
                parts.append(value if value.endswith((".", "?", "!")) else value + ".")
        suffix = re.search(rf"{re.escape(self.year)}([a-z])\)?$", self.cite) if self.cite and self.year else None
        where = self.year + (suffix.group(1) if suffix else "")
        if self.volume:
            where += f";{self.volume}"
        if self.pages:
            where += f":{self.pages}"
        if self.journal and where:
            parts.append(f"{self.journal}. {where}.")
        elif self.journal or where:
            parts.append(f"{self.journal or where}.")
        if self.doi:
            parts.append(f"doi:{self.doi}.")
        if self.pmid:
            parts.append(f"PMID {self.pmid}.")
        if self.pmcid:
            parts.append(f"{self.pmcid}.")
        if self.note:
            parts.append(self.note if self.note.endswith(".") else self.note + ".")
        if self.url:
            parts.append(self.url)
        if self.verify:  # never guessed: marked, and listed in references_to_check.txt
            parts.append(f"[To be confirmed: {self.verify}.]")
        return " ".join(parts)

    @property
    def sort_key(self) -> tuple:
        return (self.short.lower(), self.year, self.key)


_FIELDS = tuple(f.name for f in fields(Reference) if f.name != "key")


def _et_al(authors: str) -> bool:
    return "et al" in authors


def _surnames(authors: str) -> list[str]:
    """Surnames of "Mann HB, Whitney DR" ([Mann, Whitney]) or "Cong et al." ([Cong]); initials dropped."""
    text = authors.replace("et al.", "").replace("et al", "").strip().strip(",").strip()
    if not text or text.startswith("("):
        return []
    out = []
    for name in (n.strip() for n in text.split(",")):
        if not name:
            continue
        tokens = name.split()
        if len(tokens) > 1 and tokens[-1].isupper() and len(tokens[-1]) <= 3:
            tokens = tokens[:-1]
        out.append(" ".join(tokens))
    return out


def free_text_reference(key: str, text: str) -> Reference:
    """A reference given only as text (e.g. a plug-in test's registry ``reference``)."""
    m = re.match(r"\s*([A-Z][\w'-]+)[^()]*\((\d{4})\)", text)
    cite = f"{m.group(1)} {m.group(2)}" if m else text.split(".")[0][:40]
    return Reference(key=key, title=text, cite=cite)


@dataclass(frozen=True)
class Library:
    """The references file: entries by key, evidence sections and the references of each method."""

    entries: dict[str, Reference]
    sections: dict[str, tuple[str, ...]]
    methods: dict[str, dict[str, tuple[str, ...]]]

    def get(self, key: str) -> Reference | None:
        return self.entries.get(key)

    def method(self, group: str, name: str) -> tuple[str, ...]:
        """Keys cited for method ``name`` of ``group`` ("tests", "intervals", "general"); () if none listed."""
        return self.methods.get(group, {}).get(name, ())


def read_library(path: str | Path) -> Library:
    raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    sections = {str(k): tuple(v) for k, v in raw.pop("sections", {}).items()}
    methods = {group: {name: tuple(keys) for name, keys in table.items()} for group, table in raw.pop("methods", {}).items()}
    entries = {}
    for key, item in raw.items():
        unknown = set(item) - set(_FIELDS)
        if unknown:
            raise ValueError(f"{path}: reference {key!r} has unknown fields {sorted(unknown)}; allowed: {list(_FIELDS)}")
        entries[key] = Reference(key=key, **{k: str(v) for k, v in item.items()})
    return Library(_distinct(entries), sections, methods)


def _distinct(entries: dict[str, Reference]) -> dict[str, Reference]:
    """Entries whose citations would read alike ("Matthiessen et al. 2007" twice) get 2007a, 2007b (by key)."""
    by_short: dict[str, list[str]] = {}
    for key, ref in entries.items():
        by_short.setdefault(ref.short, []).append(key)
    out = dict(entries)
    for short, keys in by_short.items():
        if len(keys) < 2:
            continue
        for letter, key in zip("abcdefghijklmnopqrstuvwxyz", sorted(keys)):
            ref = entries[key]
            cite = f"{short}{letter}" if ref.year and short.endswith(ref.year) else f"{short} ({letter})"
            out[key] = replace(ref, cite=cite)
    return out


@lru_cache(maxsize=4)
def load_library(path: str | None = None) -> Library:
    """The project's references (``trialsim/references.toml``), read once."""
    return read_library(path or REFERENCES_FILE)


def citation_keys(text: str) -> list[str]:
    """The citation keys in ``text`` (``[qu2015, hu2017]``), in order, each once."""
    keys: list[str] = []
    for m in CITATION.finditer(text or ""):
        for key in re.split(r"\s*[,;]\s*", m.group(1).strip()):
            if key not in keys:
                keys.append(key)
    return keys


class Citations:
    """What one report cites: resolves citations in text and collects the references it uses.

    ``resolve("OR 2.04 [qu2015]")`` gives ``"OR 2.04 [Qu et al. 2015]"`` and records Qu 2015;
    ``add(key)`` records a method's reference; :meth:`entries` is the reference list, sorted by
    author and year. A key the library does not hold is left in the text as written and listed in
    :attr:`unresolved`.
    """

    def __init__(self, library: Library | None = None):
        self.library = library or load_library()
        self.used: dict[str, Reference] = {}
        self.unresolved: list[str] = []

    def add(self, key: str, fallback: str = "") -> Reference | None:
        """Cite ``key`` (a library key); ``fallback`` is its full text when the library lacks it."""
        ref = self.library.get(key)
        if ref is None and fallback:
            ref = free_text_reference(key, fallback)
        if ref is None:
            if key not in self.unresolved:
                self.unresolved.append(key)
            return None
        self.used.setdefault(key, ref)
        return ref

    def add_all(self, keys: Iterable[str]) -> list[Reference]:
        return [r for r in (self.add(k) for k in keys) if r is not None]

    def short(self, *keys: str) -> str:
        """"Qu et al. 2015; Hu et al. 2017" for ``keys`` (cited)."""
        return "; ".join(r.short for r in self.add_all(keys))

    def resolve(self, text: str) -> str:
        """``text`` with its citation keys and evidence-section numbers as author-year citations."""
        def keys(m: re.Match) -> str:
            found = re.split(r"\s*[,;]\s*", m.group(1).strip())
            refs = [self.add(k) for k in found]
            if any(r is None for r in refs):
                return m.group(0)
            return "[" + "; ".join(r.short for r in refs) + "]"

        def section(m: re.Match) -> str:
            found = self.library.sections.get(m.group(1))
            return "[" + self.short(*found) + "]" if found else m.group(0)

        return SECTION.sub(section, CITATION.sub(keys, text or ""))

    def entries(self) -> list[Reference]:
        return sorted(self.used.values(), key=lambda r: r.sort_key)


def software_reference(version: str, versions: dict[str, str]) -> Reference:
    """trialsim itself, with its version and those of the libraries that computed the numbers."""
    libs = ", ".join(f"{name} {v}" for name, v in versions.items() if v)
    return Reference(key="trialsim", cite=f"trialsim {version}", authors="trialsim developers",
                     title=f"trialsim {version}: Monte Carlo operating characteristics of small clinical trials",
                     note=f"Run with {libs}." if libs else "")
