"""The checks against the collector's database and the report a run prints.

What the terminals made (``record_id``, newest ``rev``, ``seq``, terminal; from the workers'
result files) is compared with the rows the collector stored for the county since the run
started: none missing (lost), none stored twice (two rows for one terminal's ``seq``: a record
that came back under another id), none with an older ``rev`` than the newest made, none that no
terminal made. ``deliveries`` beyond one per row are the duplicates the collector dropped (the
resends the protocol expects), reported but not a failure.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.cli.county.storage import Storage

SIM_CPU_LIMIT = 1.0  # the whole simulator under one core: the run measures the broker


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted ``values`` (seconds, rounded to ms)."""
    if not values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(values)))
    return round(values[rank - 1], 3)


def check_database(
    storage: Storage, county: str, since: str, records: list[list[Any]]
) -> dict[str, Any]:
    rows = storage.rows(
        "SELECT record_id, rev, terminal, seq, deliveries FROM records "
        "WHERE county=? AND first_received_at >= ?",
        (county, since),
    )
    made = {rid: (term, rev, seq) for term, rid, rev, seq in records}
    stored = {r["record_id"]: r for r in rows}
    lost = sorted(rid for rid in made if rid not in stored)
    extra = sorted(rid for rid in stored if rid not in made)
    old_rev = sorted(
        rid for rid, (_, rev, _) in made.items() if rid in stored and stored[rid]["rev"] != rev
    )
    wrong_terminal = sorted(
        rid
        for rid, (term, _, _) in made.items()
        if rid in stored and stored[rid]["terminal"] != term
    )
    per_seq = Counter((r["terminal"], r["seq"]) for r in rows)
    twice = sorted(f"{k[0]}#{k[1]}" for k, n in per_seq.items() if n > 1)
    deliveries = sum(int(r["deliveries"]) for r in rows)
    return {
        "made": len(made),
        "stored": len(rows),
        "lost": len(lost),
        "stored_twice": len(twice),
        "not_made": len(extra),
        "older_rev": len(old_rev),
        "wrong_terminal": len(wrong_terminal),
        "duplicates_dropped": deliveries - len(rows),
        "examples": {
            "lost": lost[:5],
            "stored_twice": twice[:5],
            "not_made": extra[:5],
            "older_rev": old_rev[:5],
        },
    }


@dataclass
class Report:
    scenario: str
    terminals: int
    processes: int
    elapsed_s: float
    online_end: int
    online_end_broker_view: int
    all_back_online: bool
    drained: bool
    schedule_acked: int
    counts: dict[str, int]
    database: dict[str, Any]
    latency_s: dict[str, Any]
    collector: dict[str, Any]
    broker: dict[str, Any] | None
    simulator: list[dict[str, Any]]
    events: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def sim_cores(self) -> float:
        return round(sum(s["cpu_cores_mean"] for s in self.simulator), 3)

    def failures(self) -> list[str]:
        db = self.database
        out = []
        for key in ("lost", "stored_twice", "not_made", "older_rev", "wrong_terminal"):
            if db[key]:
                out.append(f"{db[key]} record(s) {key.replace('_', ' ')}")
        if db["made"] == 0:
            out.append("no records were made")
        if not self.all_back_online or self.online_end != self.terminals:
            out.append(f"{self.online_end} of {self.terminals} terminals online at the end")
        if self.online_end_broker_view != self.terminals:
            out.append(
                f"the broker's retained state says {self.online_end_broker_view} of "
                f"{self.terminals} online"
            )
        if not self.drained:
            out.append(f"{self.counts.get('outbox')} message(s) never left the outboxes")
        if self.schedule_acked != self.terminals:
            out.append(f"{self.schedule_acked} of {self.terminals} terminals acked the schedule")
        out += [n for n in self.notes if n.startswith("timed out")]
        if self.sim_cores() >= SIM_CPU_LIMIT:
            out.append(f"the simulator used {self.sim_cores():.2f} cores (limit {SIM_CPU_LIMIT})")
        return out

    def passed(self) -> bool:
        return not self.failures()

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "simulator_cores_total": self.sim_cores(),
            "passed": self.passed(),
            "failures": self.failures(),
        }

    def text(self) -> str:
        db, lat, col = self.database, self.latency_s, self.collector
        c = self.counts
        lines = [
            f"fleet simulation: {self.scenario}, {self.terminals} terminals in "
            f"{self.processes} process(es), {self.elapsed_s:.0f} s",
            f"  online at the end     {self.online_end}/{self.terminals} "
            f"(broker's retained view {self.online_end_broker_view}); schedule acked by "
            f"{self.schedule_acked}",
            f"  links                 {c.get('connects')} connects, {c.get('attempts')} attempts, "
            f"{c.get('flaps')} flaps; {c.get('heartbeats')} heartbeats",
            f"  records               {db['made']} made ({c.get('revised')} revised to rev 2), "
            f"{db['stored']} stored, lost {db['lost']}, stored twice {db['stored_twice']}, "
            f"older rev {db['older_rev']}; {db['duplicates_dropped']} repeat deliveries "
            "(resends, revisions) absorbed",
            f"  creation -> ack       p50 {_s(lat['p50'])}, p99 {_s(lat['p99'])}, "
            f"max {_s(lat['max'])} ({lat['n']} acks)",
            f"  collector             {col.get('rows_per_s_peak_5s')} rows/s peak (5 s), "
            f"{col.get('rows_per_s_mean')} mean; CPU {col['cpu_cores_mean']:.2f} cores, "
            f"RSS {col['rss_mb_peak']} MB",
        ]
        if "backlog_records" in col:
            lines.append(
                f"  backlog flush         {col['backlog_records']} records waiting when the "
                f"collector returned, all acked in {col['flush_s']} s "
                f"({col['flush_records_per_s']} records/s)"
            )
        if "restart_all_back_s" in self.events:
            lines.append(
                f"  broker restart        all back online {self.events['restart_all_back_s']} s "
                "after it returned"
            )
        if self.broker is not None:
            b = self.broker
            lines.append(
                f"  broker                CPU {b['cpu_cores_mean'] * 100:.1f} % mean, "
                f"{b['cpu_cores_peak_5s'] * 100:.1f} % peak (5 s); RSS {b['rss_mb_peak']} MB peak"
            )
        per = ", ".join(f"{s['cpu_cores_mean']:.3f}" for s in self.simulator)
        peak = max((s["cpu_cores_peak_5s"] for s in self.simulator), default=0.0)
        lines.append(
            f"  simulator             {self.sim_cores():.3f} cores in total (per process: {per}; "
            f"peak {peak:.2f}), RSS {max(s['rss_mb_peak'] for s in self.simulator)} MB/process"
        )
        lines += [f"  note: {n}" for n in self.notes]
        fails = self.failures()
        lines.append("PASS" if not fails else "FAIL: " + "; ".join(fails))
        return "\n".join(lines)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, ensure_ascii=False)


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f} s"
