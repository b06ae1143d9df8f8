"""The catalogs are complete and compiled; language choice; CJK-aware widths."""

from __future__ import annotations

import gettext
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.cli import i18n
from agent.cli.i18n import (
    compile_po,
    extract_msgids,
    fit,
    pad,
    pick_language,
    placeholders,
    po_catalog,
    source_files,
    table,
    text_width,
)

PO, MO = i18n.catalog_paths("zh_CN")


def test_every_message_of_the_code_is_translated_with_the_same_placeholders() -> None:
    used = extract_msgids(source_files())
    assert len(used) > 200
    catalog = po_catalog(PO.read_text("utf-8"))
    missing = sorted(k for k in used if k not in catalog)
    assert not missing, missing
    for key in used:
        english = key.split("\0")
        chinese = catalog[key]
        for source in english:
            assert placeholders(source) == placeholders(chinese), (key, chinese)


def test_committed_mo_is_up_to_date() -> None:
    built = gettext.GNUTranslations(io.BytesIO(compile_po(PO.read_text("utf-8"))))
    with open(MO, "rb") as fh:
        committed = gettext.GNUTranslations(fh)
    assert committed._catalog == built._catalog  # type: ignore[attr-defined]


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="GNU gettext msgfmt not installed")
def test_our_compiler_agrees_with_msgfmt(tmp_path: Path) -> None:
    ref = tmp_path / "ref.mo"
    subprocess.run(["msgfmt", "-c", "-o", str(ref), str(PO)], check=True, capture_output=True)
    with open(ref, "rb") as fh:
        theirs = gettext.GNUTranslations(fh)
    ours = gettext.GNUTranslations(io.BytesIO(compile_po(PO.read_text("utf-8"))))
    assert ours._catalog == theirs._catalog  # type: ignore[attr-defined]


def test_po_parser_handles_plurals_context_escapes_and_fuzzy() -> None:
    text = "\n".join(
        [
            'msgid ""',
            'msgstr ""',
            '"Content-Type: text/plain; charset=UTF-8\\n"',
            '"Plural-Forms: nplurals=1; plural=0;\\n"',
            "",
            'msgctxt "menu"',
            'msgid "Open"',
            'msgstr "打开"',
            "",
            "#, fuzzy",
            'msgid "Guess"',
            'msgstr "猜"',
            "",
            'msgid "{n} file"',
            'msgid_plural "{n} files"',
            'msgstr[0] "{n} 个文件"',
            "",
            'msgid "Say \\"hi\\"\\n"',
            'msgstr ""',
            '"说\\"你好\\"\\n"',
        ]
    )
    t = gettext.GNUTranslations(io.BytesIO(compile_po(text)))
    assert t.pgettext("menu", "Open") == "打开"
    assert t.gettext("Guess") == "Guess"  # fuzzy entries are left out, like msgfmt does
    assert t.ngettext("{n} file", "{n} files", 5) == "{n} 个文件"
    assert t.gettext('Say "hi"\n') == '说"你好"\n'


def test_catalog_compiled_in_memory_when_the_mo_is_missing(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "zh_CN" / "LC_MESSAGES"
    target.mkdir(parents=True)
    shutil.copy(PO, target / PO.name)
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    assert i18n.load_translation("zh_CN").gettext("Mon") == "周一"


@pytest.mark.parametrize(
    ("requested", "env", "expected"),
    [
        (None, {"LANG": "zh_CN.UTF-8"}, "zh_CN"),
        (None, {"LANG": "en_US.UTF-8"}, "en"),
        (None, {"LANGUAGE": "zh_CN:en", "LANG": "C"}, "zh_CN"),
        (None, {"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "en"),
        (None, {"LC_MESSAGES": "zh_TW.UTF-8"}, "zh_CN"),
        (None, {}, "en"),
        ("en", {"LANG": "zh_CN.UTF-8"}, "en"),
        ("zh", {"LANG": "C"}, "zh_CN"),
        ("zh-CN", {}, "zh_CN"),
    ],
)
def test_language_follows_lang_and_lang_option_wins(requested, env, expected) -> None:
    assert pick_language(requested, env) == expected


def test_wide_characters_count_double() -> None:
    assert text_width("abc") == 3
    assert text_width("生猪养殖") == 8
    assert text_width("（一）") == 6  # fullwidth brackets
    assert text_width("e\u0301") == 1  # a combining accent takes no cell
    assert pad("课程", 6) == "课程  "
    assert pad("7", 3, ">") == "  7"
    assert text_width(fit("生猪养殖技术培训第一讲", 10)) <= 10
    assert fit("short", 10) == "short"
    lines = table(["No.", "Title", "Result"], [["1", "生猪养殖", "ok"], ["12", "Apple", "failed"]])
    cols = {
        text_width(ln[: ln.index(word)])
        for ln, word in zip(lines, ["Result", "ok", "failed"], strict=True)
    }
    assert len(cols) == 1, lines


def test_durations_and_weekdays_in_both_languages() -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Shanghai")
    ts = 1795865400.0  # 2026-11-28 (Saturday) 19:30 in Shanghai
    try:
        i18n.install("en")
        assert i18n.local_with_weekday(ts, tz) == "2026-11-28 Sat 19:30"
        assert i18n.duration_text(3 * 3600 + 300) == "3 h 5 min"
        i18n.install("zh_CN")
        assert i18n.local_with_weekday(ts, tz) == "2026-11-28 周六 19:30"
        assert i18n.duration_text(2 * 86400 + 3600) == "2 天 1 小时"
        assert i18n.local_time("2026-11-28T11:30:00.000Z", tz) == "2026-11-28 19:30"
    finally:
        i18n.install("en")
