"""The catalog tools (``agent.cli.i18n_catalog``) on a catalog tree of their own, and the names
``agent.cli.i18n`` keeps exporting after the split into run-time face and tools."""

from __future__ import annotations

import gettext
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import i18n, i18n_catalog
from agent.cli.i18n_catalog import Catalogs
from tests.helpers import ROOT

NAMES = [
    "DOMAIN",
    "LANGUAGES",
    "LOCALE_DIR",
    "WEEKDAYS",
    "N_",
    "_",
    "catalog_paths",
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

HEADER = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'


@pytest.mark.parametrize("name", NAMES)
def test_every_name_is_still_importable_from_i18n(name: str) -> None:
    assert hasattr(i18n, name)


def tree(tmp_path: Path) -> Catalogs:
    (tmp_path / "src.py").write_text('_("Hello")\n_("Bye {n}")\n', "utf-8")
    po_dir = tmp_path / "locale" / "zh_CN" / "LC_MESSAGES"
    po_dir.mkdir(parents=True)
    (po_dir / "x.po").write_text(HEADER + 'msgid "Hello"\nmsgstr "你好"\n', "utf-8")
    return Catalogs(
        ("en", "zh_CN"),
        lambda lang: (
            tmp_path / "locale" / lang / "LC_MESSAGES" / "x.po",
            tmp_path / "locale" / lang / "LC_MESSAGES" / "x.mo",
        ),
        lambda: [tmp_path / "src.py"],
        tmp_path,
    )


def test_check_update_compile_on_a_tree_of_their_own(tmp_path: Path, capsys) -> None:
    cats = tree(tmp_path)
    po, mo = cats.paths("zh_CN")
    assert i18n_catalog.main(["check"], cats) == 1
    assert "missing 'Bye {n}'" in capsys.readouterr().out
    assert i18n_catalog.main(["update"], cats) == 0
    assert "untranslated 'Bye {n}'" in capsys.readouterr().out
    text = po.read_text("utf-8")
    assert "#: src.py" in text and 'msgid "Bye {n}"' in text and "python-brace-format" in text
    po.write_text(text.replace('msgid "Bye {n}"\nmsgstr ""', 'msgid "Bye {n}"\nmsgstr "再见 {n}"'))
    assert i18n_catalog.main(["check"], cats) == 0
    assert i18n_catalog.main(["compile"], cats) == 0
    assert capsys.readouterr().out.strip() == str(mo)
    with open(mo, "rb") as fh:
        t = gettext.GNUTranslations(fh)
    assert (t.gettext("Hello"), t.gettext("Bye {n}")) == ("你好", "再见 {n}")
    assert i18n_catalog.main(["nonsense"], cats) == 2


def test_the_package_catalogs_follow_locale_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path / "agent" / "locale")
    cats = i18n.catalogs()
    assert cats.root == tmp_path
    assert cats.paths("zh_CN")[0] == tmp_path / "agent/locale/zh_CN/LC_MESSAGES/stationctl.po"
    assert cats.sources() == i18n.source_files()


def test_python_m_i18n_check_passes_and_rejects_unknown_commands() -> None:
    ok = subprocess.run([sys.executable, "-m", "agent.cli.i18n", "check"], cwd=ROOT)
    assert ok.returncode == 0
    bad = subprocess.run(
        [sys.executable, "-m", "agent.cli.i18n", "frobnicate"], cwd=ROOT, capture_output=True
    )
    assert bad.returncode == 2 and b"usage" in bad.stderr
