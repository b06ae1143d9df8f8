"""The catalog tools: read ``.po`` files, bring them in line with the code, compile them to ``.mo``.

These are the build-time half of the translations (``python -m agent.cli.i18n update|compile|check``
runs :func:`main` here); :mod:`agent.cli.i18n` is the run-time half and also uses
:func:`compile_po`, to compile a catalog in memory when its ``.mo`` is missing or stale, so a
terminal without GNU gettext's ``msgfmt`` still speaks Chinese. This module knows nothing of where
the catalogs and the sources are: the caller passes a :class:`Catalogs`, which keeps the
dependency one-way (``i18n`` -> here) and lets tests point the tools at a temporary tree.
"""

from __future__ import annotations

import ast
import re
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Catalogs:
    """Where the catalogs and the translated sources are.

    ``languages[0]`` is the source language (English), which has no catalog to update or check;
    ``paths(language)`` gives its ``.po`` and ``.mo``; ``sources()`` the files whose ``_``, ``N_``
    and ``ngettext`` calls make the msgids; ``root`` the folder the ``#:`` references start from.
    """

    languages: tuple[str, ...]
    paths: Callable[[str], tuple[Path, Path]]
    sources: Callable[[], list[Path]]
    root: Path


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


# -- finding the msgids the code uses ------------------------------------------------------------


def extract_msgids(paths: Iterable[Path]) -> dict[str, list[str]]:
    """msgid (or ``singular\\0plural``) -> places, from calls to _, N_ and ngettext."""
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


def placeholders(text: str) -> set[str]:
    """The {name} and %-style placeholders of a message (they must survive translation)."""
    braces = set(re.findall(r"\{([a-z_0-9]*)(?:[:!][^}]*)?\}", text))
    percents = re.findall(r"%(?:\(\w+\))?[srd]", text)
    return braces | {f"%{i}:{p}" for i, p in enumerate(sorted(percents))}


# -- update and the commands --------------------------------------------------------------------


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


def compile_all(catalogs: Catalogs) -> list[Path]:
    """Write the ``.mo`` of every language that has a ``.po``; returns the files written."""
    written = []
    for lang in catalogs.languages:
        po, mo = catalogs.paths(lang)
        if po.exists():
            mo.write_bytes(compile_po(po.read_text("utf-8")))
            written.append(mo)
    return written


def main(argv: list[str], catalogs: Catalogs) -> int:
    """``update``, ``compile`` or ``check``; the exit status (``check``: 1 when a msgid is missing)."""
    if argv[:1] == ["compile"]:
        for path in compile_all(catalogs):
            print(path)
        return 0
    if argv[:1] == ["update"]:
        used = extract_msgids(catalogs.sources())
        for lang in catalogs.languages[1:]:
            po, _mo = catalogs.paths(lang)
            text, missing = update_po(po.read_text("utf-8"), used, catalogs.root)
            po.write_text(text, "utf-8")
            for key in missing:
                print(f"{lang}: untranslated {key!r}")
        return 0
    if argv[:1] == ["check"]:
        used = extract_msgids(catalogs.sources())
        status = 0
        for lang in catalogs.languages[1:]:
            po, _mo = catalogs.paths(lang)
            have = po_catalog(po.read_text("utf-8"))
            for key, where in sorted(used.items()):
                if key not in have:
                    status = 1
                    print(f"{lang}: missing {key!r} ({where[0]})")
        return status
    print("usage: python -m agent.cli.i18n update|compile|check", file=sys.stderr)
    return 2
