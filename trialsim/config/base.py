"""The one base class for every config section (strict, frozen, unknown keys rejected) and the text types.

Text that reaches a report (titles, names, labels, units, sources) is refused at load when it holds a
character no writer can carry: control characters (NUL, escape, ..., and C1 controls), DEL,
surrogates and the non-characters U+FFFE/U+FFFF, which XML (docx, HTML) cannot hold. Tab and newline
are allowed only in free text. Names that become parts of endpoint names, ids or file names are
restricted to a safe ASCII alphabet. Anything else (``<``, ``$``, ``|``, ...) is the writers' to escape.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


# The largest chance a value may be missing: beyond it almost no simulated trial has data to analyse.
MISSING_MAX = 0.95


class StrictModel(BaseModel):
    """Base of all config sections.

    ``extra="forbid"`` turns a misspelt key into an error instead of a silently ignored value;
    ``strict=True`` refuses ``"10"`` where a number is expected (an int is still accepted for a float);
    ``frozen=True`` makes a validated scenario immutable, so it can be hashed and shared across workers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, validate_default=True)


def _unwritable(ch: str, *, multiline: bool) -> bool:
    if multiline and ch in "\t\n":
        return False
    return unicodedata.category(ch) in ("Cc", "Cs") or ch in "\ufffe\uffff"


def _text(multiline: bool):
    def check(value: str) -> str:
        # fast path: printable text holds no control character, surrogate or non-character (planning validates
        # thousands of derived scenarios, and the character-by-character check below was 3% of a report's CPU)
        if (value.replace("\t", " ").replace("\n", " ") if multiline else value).isprintable():
            return value
        bad = sorted({f"U+{ord(c):04X}" for c in value if _unwritable(c, multiline=multiline)})
        if bad:
            allowed = "tab and newline are the only control characters allowed here" if multiline else \
                "one line of printable text (no tab, newline or other control character)"
            raise ValueError(f"contains {', '.join(bad)}, which no report format can carry; use {allowed}")
        return value

    return check


IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")


def _identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError("use an ASCII letter, then ASCII letters, digits and '_' (it becomes part of endpoint names, "
                         "ids and file names)")
    return value


def _file_name(value: str) -> str:
    if not _FILE_NAME.match(value):
        raise ValueError("use ASCII letters, digits, '_', '-' and '.', not starting with '.' or '-' (it becomes a file name)")
    return value


# One line of text for a report: a title, label, unit, source or arm name.
Text = Annotated[str, AfterValidator(_text(multiline=False))]
# Free text (a description): tab and newline allowed.
LongText = Annotated[str, AfterValidator(_text(multiline=True))]
# A name that becomes part of endpoint names, ids and file names: an ASCII identifier.
Identifier = Annotated[str, Field(min_length=1, max_length=60), AfterValidator(_identifier)]
# A name used as a file name.
FileName = Annotated[str, AfterValidator(_file_name)]
