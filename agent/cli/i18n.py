"""Messages in the admin's language, and text that lines up on a terminal whatever the script.

English is the source language; ``agent/locale/zh_CN/LC_MESSAGES/stationctl.po`` holds the Chinese
catalog. The compiled ``.mo`` is committed next to it; when it is missing (or older than the
``.po``), the catalog is compiled in memory by :func:`compile_po` below, so a terminal without
GNU gettext's ``msgfmt`` still speaks Chinese. ``python -m agent.cli.i18n compile`` rewrites the
``.mo`` files; ``python -m agent.cli.i18n update`` brings the catalogs in line with the msgids the
code uses (new ones untranslated), ``python -m agent.cli.i18n check`` lists the untranslated ones.

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
import re
import struct
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

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


# -- .po -> .mo --------------------------------------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b"}


def _unquote(token: str, where: str) -> str:
    token = token.strip()
    if len(token) < 2 or token[0] != '"' or token[-1] != '"':
        raise ValueError(f"{where}: expected a quoted string, got {token!r}")
    body, out, i = token[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise ValueError(f"{where}: unknown escape \\{nxt}")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_po(text: str) -> list[dict[str, object]]:
    """Entries of a .po file: dicts with msgctxt, msgid, msgid_plural, msgstr (list), fuzzy."""
    entries: list[dict[str, object]] = []
    cur: dict[str, object] = {}
    field: tuple[str, int | None] | None = None
    fuzzy = False

    def flush() -> None:
        nonlocal cur, fuzzy, field
        if "msgid" in cur:
            cur["fuzzy"] = fuzzy
            cur.setdefault("msgstr", [])
            entries.append(cur)
        cur, fuzzy, field = {}, False, None

    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"line {lineno}"
        line = raw.strip()
        if not line:
            flush()
            continue
        if line.startswith("#"):
            if "msgstr" in cur:
                flush()
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            continue
        m = re.match(r"^(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])?\s+(\".*\")$", line)
        if m:
            key, index, value = m.group(1), m.group(2), _unquote(m.group(3), where)
            if key in ("msgctxt", "msgid") and "msgid" in cur and "msgstr" in cur:
                flush()
            if key == "msgstr":
                strs = cur.setdefault("msgstr", [])
                assert isinstance(strs, list)
                idx = int(index) if index is not None else 0
                while len(strs) <= idx:
                    strs.append("")
                strs[idx] = value
                field = ("msgstr", idx)
            else:
                cur[key] = value
                field = (key, None)
            continue
        if line.startswith('"') and field is not None:
            value = _unquote(line, where)
            key, idx = field
            if key == "msgstr":
                strs = cur["msgstr"]
                assert isinstance(strs, list) and idx is not None
                strs[idx] += value
            else:
                cur[key] = str(cur[key]) + value
            continue
        raise ValueError(f"{where}: cannot parse {raw!r}")
    flush()
    return entries


def po_catalog(text: str) -> dict[str, str]:
    """msgid key -> translation as they go into a .mo (untranslated and fuzzy entries left out)."""
    out: dict[str, str] = {}
    for e in parse_po(text):
        strs = [str(s) for s in e["msgstr"]]  # type: ignore[union-attr]
        msgid = str(e["msgid"])
        if msgid and (e["fuzzy"] or not any(strs)):
            continue
        key = msgid
        if "msgid_plural" in e:
            key += "\0" + str(e["msgid_plural"])
        if "msgctxt" in e:
            key = str(e["msgctxt"]) + "\x04" + key
        out[key] = "\0".join(strs)
    return out


def compile_po(text: str) -> bytes:
    """The GNU .mo bytes for a .po text (little-endian, no hash table, keys sorted)."""
    catalog = po_catalog(text)
    keys = sorted(catalog, key=lambda k: k.encode("utf-8"))
    ids = [k.encode("utf-8") for k in keys]
    strs = [catalog[k].encode("utf-8") for k in keys]
    n = len(keys)
    header = 7 * 4
    orig_table = header
    trans_table = orig_table + n * 8
    data_start = trans_table + n * 8
    blob = bytearray()
    orig_entries, trans_entries = [], []
    for s in ids:
        orig_entries.append((len(s), data_start + len(blob)))
        blob += s + b"\0"
    for s in strs:
        trans_entries.append((len(s), data_start + len(blob)))
        blob += s + b"\0"
    out = bytearray(struct.pack("<7I", 0x950412DE, 0, n, orig_table, trans_table, 0, data_start))
    for length, offset in orig_entries + trans_entries:
        out += struct.pack("<2I", length, offset)
    out += blob
    return bytes(out)


def compile_all() -> list[Path]:
    written = []
    for lang in LANGUAGES:
        po, mo = catalog_paths(lang)
        if po.exists():
            mo.write_bytes(compile_po(po.read_text("utf-8")))
            written.append(mo)
    return written


# -- finding the msgids the code uses ------------------------------------------------------------


def extract_msgids(paths: Iterable[Path]) -> dict[str, list[str]]:
    """msgid (or ``singular\\0plural``) -> places, from calls to _, N_ and ngettext."""
    import ast

    found: dict[str, list[str]] = {}
    for path in paths:
        tree = ast.parse(Path(path).read_text("utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            args = node.args
            if node.func.id in ("_", "N_") and args and isinstance(args[0], ast.Constant):
                if isinstance(args[0].value, str):
                    found.setdefault(args[0].value, []).append(f"{path}:{node.lineno}")
            elif node.func.id == "ngettext" and len(args) >= 2:
                a, b = args[0], args[1]
                if isinstance(a, ast.Constant) and isinstance(b, ast.Constant):
                    key = f"{a.value}\0{b.value}"
                    found.setdefault(key, []).append(f"{path}:{node.lineno}")
    return found


def source_files() -> list[Path]:
    agent = Path(__file__).resolve().parent.parent
    return sorted(
        [
            *(agent / "cli" / "stationctl").glob("*.py"),
            agent / "adapters" / "control_socket.py",
            agent / "runtime" / "attendance.py",
            agent / "cli" / "i18n.py",
        ]
    )


def placeholders(text: str) -> set[str]:
    """The {name} and %-style placeholders of a message (they must survive translation)."""
    braces = set(re.findall(r"\{([a-z_0-9]*)(?:[:!][^}]*)?\}", text))
    percents = re.findall(r"%(?:\(\w+\))?[srd]", text)
    return braces | {f"%{i}:{p}" for i, p in enumerate(sorted(percents))}


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


def _po_quote(text: str) -> str:
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{body}"'


def update_po(po_text: str, used: dict[str, list[str]], root: Path) -> tuple[str, list[str]]:
    """The catalog re-made from the msgids the code uses (like xgettext + msgmerge):
    existing translations kept, new msgids added untranslated, unused ones dropped.
    Returns the new text and the msgids still untranslated."""
    entries = parse_po(po_text)
    header = next((e for e in entries if e["msgid"] == ""), None)
    old = {}
    for e in entries:
        key = str(e["msgid"]) + ("\0" + str(e["msgid_plural"]) if "msgid_plural" in e else "")
        old[key] = [str(x) for x in e["msgstr"]]  # type: ignore[union-attr]
    lines = [ln for ln in po_text.splitlines() if ln.startswith("# ")]
    lines += ['msgid ""', "msgstr " + _po_quote("")]
    for part in (str(header["msgstr"][0]) if header else "").splitlines(keepends=True):  # type: ignore[index]
        lines.append(_po_quote(part))
    lines.append("")
    missing = []
    for key, where in used.items():
        refs = sorted({f"{Path(w.rsplit(':', 1)[0]).relative_to(root)}" for w in where})
        lines.append("#: " + " ".join(refs))
        if "{" in key:
            lines.append("#, python-brace-format")
        translated = old.get(key, [])
        if not any(translated):
            missing.append(key)
        if "\0" in key:
            singular, plural = key.split("\0", 1)
            lines += [f"msgid {_po_quote(singular)}", f"msgid_plural {_po_quote(plural)}"]
            lines.append(f"msgstr[0] {_po_quote(translated[0] if translated else '')}")
        else:
            lines += [
                f"msgid {_po_quote(key)}",
                f"msgstr {_po_quote(translated[0] if translated else '')}",
            ]
        lines.append("")
    return "\n".join(lines), missing


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["compile"]:
        for path in compile_all():
            print(path)
        return 0
    if args[:1] == ["update"]:
        used = extract_msgids(source_files())
        root = LOCALE_DIR.parent.parent
        for lang in LANGUAGES[1:]:
            po, _mo = catalog_paths(lang)
            text, missing = update_po(po.read_text("utf-8"), used, root)
            po.write_text(text, "utf-8")
            for key in missing:
                print(f"{lang}: untranslated {key!r}")
        return 0
    if args[:1] == ["check"]:
        used = extract_msgids(source_files())
        status = 0
        for lang in LANGUAGES[1:]:
            po, _mo = catalog_paths(lang)
            have = po_catalog(po.read_text("utf-8"))
            for key, where in sorted(used.items()):
                if key not in have:
                    status = 1
                    print(f"{lang}: missing {key!r} ({where[0]})")
        return status
    print("usage: python -m agent.cli.i18n update|compile|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
