"""Pin ids and paths in text output, unambiguous and one line each: a backslash is written ``\\\\``, a
line break, tab or other control character ``\\n``, ``\\t``, ``\\r``, ``\\xNN`` or ``\\uNNNN`` (the
way ``ls`` quotes odd names), as are the invisible characters that reorder text (bidi controls).
``unescape`` reads that form back: the query commands accept an id as it is printed."""

from __future__ import annotations

import re
import unicodedata

_NAMED = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_NAMED_BACK = {"\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
_BIDI = {"\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}
_ESCAPE = re.compile(r"\\(?:([\\ntr])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))")


def _odd(ch: str) -> bool:
    return ch in _NAMED or ch in _BIDI or unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs")


def shown(value: object) -> str:
    """``value`` as printed in a text column: unchanged unless it holds a backslash, a control, line
    separator or bidi character, which are escaped (``a<newline>b.png`` -> ``a\\nb.png``)."""
    text = "" if value is None else str(value)
    if not any(map(_odd, text)):
        return text
    out = []
    for ch in text:
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif _odd(ch):
            n = ord(ch)
            out.append(f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}")
        else:
            out.append(ch)
    return "".join(out)


def unescape(text: str) -> str | None:
    """The value that ``shown`` printed as ``text``; None when ``text`` holds a backslash that is no
    escape of ``shown`` (so it cannot be a printed form)."""
    if "\\" not in text:
        return text
    out, pos = [], 0
    for m in _ESCAPE.finditer(text):
        if "\\" in text[pos:m.start()]:
            return None
        out.append(text[pos:m.start()])
        named, hex2, hex4, hex8 = m.groups()
        code = int(hex2 or hex4 or hex8, 16) if named is None else None
        if code is not None and code > 0x10FFFF:
            return None
        out.append(_NAMED_BACK[named] if named is not None else chr(code))
        pos = m.end()
    if "\\" in text[pos:]:
        return None
    out.append(text[pos:])
    return "".join(out)


def flat(value: object) -> str:
    """A text (a title) on one line for reading, not to be typed back: line breaks and tabs become
    spaces, other control and bidi characters are escaped, backslashes are left as they are."""
    text = " ".join(("" if value is None else str(value)).replace("\t", " ").splitlines())
    return "".join(ch if ch == "\\" or not _odd(ch) else shown(ch) for ch in text)
