"""Every SQL statement of the terminal's database lives in agent/adapters/sqlite.

The county collector keeps its own database (agent/cli/county), with its own schema. A module
listed in ``PENDING`` still runs a query that has a home in the adapter (a store method or a
read-model function); the list only shrinks.
"""

from __future__ import annotations

import re
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent"
ALLOWED = ("adapters/sqlite/", "cli/county/")
PENDING = {
    "runtime/loop.py",  # Store.latest_durations / Store.occurrence_history
    "monitoring/wiring.py",  # agent.adapters.sqlite.alarms.active_alarm_rows
}
SQL = re.compile(r"""["'][^"'\n]*\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|PRAGMA)\b""")


def sql_modules() -> set[str]:
    found = set()
    for path in AGENT.rglob("*.py"):
        rel = path.relative_to(AGENT).as_posix()
        if rel.startswith(ALLOWED):
            continue
        if SQL.search(path.read_text("utf-8")):
            found.add(rel)
    return found


def test_sql_lives_only_in_the_sqlite_adapter_and_the_county_collector() -> None:
    assert sql_modules() <= PENDING


def test_the_checker_sees_a_query_where_it_does_not_belong(tmp_path: Path) -> None:
    assert SQL.search('db.execute("SELECT 1 FROM records")')
    assert SQL.search("conn.execute('DELETE FROM outbox WHERE id=?')")
    assert not SQL.search('log.info("select a course")')
