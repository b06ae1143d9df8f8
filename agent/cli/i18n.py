"""Messages in the admin's language, and text that lines up on a terminal whatever the script.

English is the source language; ``agent/locale/zh_CN/LC_MESSAGES/stationctl.po`` holds the Chinese
catalog. The compiled ``.mo`` is committed next to it; when it is missing (or older than the
``.po``), the catalog is compiled in memory by :func:`compile_po`, so a terminal without GNU
gettext's ``msgfmt`` still speaks Chinese. ``python -m agent.cli.i18n compile`` rewrites the
``.mo`` files; ``python -m agent.cli.i18n update`` brings the catalogs in line with the msgids the
code uses (new ones untranslated), ``python -m agent.cli.i18n check`` lists the untranslated ones.

This module is the run-time face (language choice, ``_``, ``N_``, widths, local times) and where
the catalogs and translated sources are; the catalog tools behind those commands live in
:mod:`agent.cli.i18n_catalog` and are re-exported here, so callers import from one place.

Language choice: ``--lang`` wins, then the environment in gettext's order (LANGUAGE, LC_ALL,
LC_MESSAGES, LANG). Anything Chinese selects zh_CN; everything else is English.

Column widths count East Asian wide and fullwidth characters as two cells and combining marks as
none, which is how terminals draw them (``unicodedata.east_asian_width``).
"""

from __future__ import annotations

import datetime as dt
import gettext
import io
import os
import struct
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

from agent.cli import i18n_catalog
from agent.cli.i18n_catalog import (
    Catalogs,
    compile_po,
    extract_msgids,
    parse_po,
    placeholders,
    po_catalog,
    update_po,
)

__all__ = [
    "DOMAIN",
    "LANGUAGES",
    "LOCALE_DIR",
    "WEEKDAYS",
    "N_",
    "_",
    "catalog_paths",
    "catalogs",
    "char_width",
    "compile_all",
    "compile_po",
    "duration_text",
    "extract_msgids",
    "fit",
    "install",
    "label_lines",
    "language",
    "load_translation",
    "local_time",
    "local_with_weekday",
    "main",
    "ngettext",
    "pad",
    "parse_po",
    "parse_utc",
    "pick_language",
    "placeholders",
    "po_catalog",
    "source_files",
    "table",
    "text_width",
    "update_po",
]

DOMAIN = "stationctl"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ("en", "zh_CN")

_translation: gettext.NullTranslations = gettext.NullTranslations()
_language = "en"


# -- choosing and loading a catalog ------------------------------------------------------------


def pick_language(requested: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``en`` or ``zh_CN`` from ``--lang`` or the environment."""
    env = os.environ if environ is None else environ
    candidates: list[str] = []
    if requested:
        candidates.append(requested)
    else:
        for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
            value = env.get(var)
            if value:
                # LANGUAGE may list several (zh_CN:en); C/POSIX mean "no translation".
                candidates.extend(value.split(":") if var == "LANGUAGE" else [value])
                break
    for cand in candidates:
        code = cand.split(".")[0].split("@")[0].replace("-", "_").lower()
        if code.startswith("zh"):
            return "zh_CN"
        if code:
            return "en"
    return "en"


def catalog_paths(language: str) -> tuple[Path, Path]:
    """The ``.po`` and ``.mo`` of ``language`` (read ``LOCALE_DIR`` at each call; tests move it)."""
    base = LOCALE_DIR / language / "LC_MESSAGES"
    return base / f"{DOMAIN}.po", base / f"{DOMAIN}.mo"


def load_translation(language: str) -> gettext.NullTranslations:
    if language == "en":
        return gettext.NullTranslations()
    po, mo = catalog_paths(language)
    try:
        if mo.exists() and (not po.exists() or mo.stat().st_mtime >= po.stat().st_mtime):
            with open(mo, "rb") as fh:
                return gettext.GNUTranslations(fh)
        if po.exists():
            return gettext.GNUTranslations(io.BytesIO(compile_po(po.read_text("utf-8"))))
    except (OSError, ValueError, struct.error):
        pass
    return gettext.NullTranslations()


def install(requested: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Select the language for this process; returns ``en`` or ``zh_CN``."""
    global _translation, _language
    _language = pick_language(requested, environ)
    _translation = load_translation(_language)
    return _language


def language() -> str:
    return _language


def _(message: str) -> str:
    return _translation.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _translation.ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a string for the catalog without translating it yet (tables of labels)."""
    return message


def source_files() -> list[Path]:
    agent = Path(__file__).resolve().parent.parent
    return sorted(
        [
            *(agent / "cli" / "stationctl").glob("*.py"),
            *(agent / "adapters" / "control_socket").glob("*.py"),
            agent / "runtime" / "attendance.py",
            agent / "cli" / "i18n.py",
        ]
    )


# -- widths and tables ---------------------------------------------------------------------------


def char_width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def text_width(text: str) -> int:
    return sum(char_width(ch) for ch in text)


def fit(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` cells, ending in '..' when cut."""
    if text_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = char_width(ch)
        if used + w > width - 2:
            break
        out.append(ch)
        used += w
    return "".join(out) + ".."


def pad(text: str, width: int, align: str = "<") -> str:
    gap = max(0, width - text_width(text))
    if align == ">":
        return " " * gap + text
    if align == "^":
        return " " * (gap // 2) + text + " " * (gap - gap // 2)
    return text + " " * gap


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    aligns: str | None = None,
    *,
    indent: str = "",
    sep: str = "  ",
) -> list[str]:
    """Lines of a plain text table; the last column is not padded (no trailing blanks)."""
    ncol = len(headers)
    aligns = aligns or "<" * ncol
    widths = [text_width(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], text_width(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = []
        for i, cell in enumerate(row):
            last = i == ncol - 1
            cells.append(cell if last and aligns[i] == "<" else pad(cell, widths[i], aligns[i]))
        lines.append((indent + sep.join(cells)).rstrip())
    return lines


def label_lines(pairs: Sequence[tuple[str, str]], indent: str = "") -> list[str]:
    """``label  value`` lines with the values aligned; multi-line values keep the alignment."""
    width = max((text_width(label) for label, _ in pairs), default=0)
    out = []
    for label, value in pairs:
        parts = value.split("\n") or [""]
        out.append((indent + pad(label, width) + "  " + parts[0]).rstrip())
        for more in parts[1:]:
            out.append((indent + " " * width + "  " + more).rstrip())
    return out


# -- times in the station's zone -----------------------------------------------------------------

WEEKDAYS = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))


def parse_utc(text: str | None) -> float | None:
    """POSIX seconds from the store's RFC 3339 UTC text (None stays None)."""
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def local_time(value: str | float | None, tz: dt.tzinfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored UTC time (text or seconds) as the station's local time; '-' when unknown."""
    ts = parse_utc(value) if isinstance(value, str) or value is None else float(value)
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, tz).strftime(fmt)


def local_with_weekday(ts: float, tz: dt.tzinfo) -> str:
    d = dt.datetime.fromtimestamp(ts, tz)
    return f"{d:%Y-%m-%d} {_(WEEKDAYS[d.weekday()])} {d:%H:%M}"


def duration_text(seconds: float | None) -> str:
    """A human span: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    if seconds is None:
        return "-"
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return _("{n} s").format(n=s)
    if s < 3600:
        return _("{n} min").format(n=s // 60)
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return _("{h} h {m} min").format(h=h, m=m) if m else _("{n} h").format(n=h)
    d, h = divmod(s // 3600, 24)
    return _("{d} d {h} h").format(d=d, h=h) if h else _("{n} d").format(n=d)


def catalogs() -> Catalogs:
    """This package's catalogs and translated sources, for the catalog tools."""
    return Catalogs(LANGUAGES, catalog_paths, source_files, LOCALE_DIR.parent.parent)


def compile_all() -> list[Path]:
    """Write every language's ``.mo`` from its ``.po``; returns the files written."""
    return i18n_catalog.compile_all(catalogs())


def main(argv: list[str] | None = None) -> int:
    """``python -m agent.cli.i18n update|compile|check``."""
    return i18n_catalog.main(sys.argv[1:] if argv is None else argv, catalogs())


if __name__ == "__main__":
    sys.exit(main())
