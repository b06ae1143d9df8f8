"""``stationctl schedule validate | next | apply FILE``: schedule files from a USB stick or a
technician's laptop, their signatures judged as the agent judges one from the county."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from agent.cli.i18n import _, fit, ngettext, table
from agent.cli.stationctl.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, CtlError, Ctx


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CtlError(
            _("Cannot read {path}: {error}").format(path=path, error=exc.strerror), EXIT_USAGE
        ) from None


def layer_name(layer: str) -> str:
    return {"terminal": _("station"), "county": _("county")}.get(layer, layer)


def _signature(ctx: Ctx, data: bytes) -> tuple[bool, str, bytes]:
    """(holds, who signed and whether it holds, the payload to validate) for ``validate``.

    Judged for this station (its county, roots and revocation list) when its config can be
    read, else for the county the envelope names under ``--roots`` (a technician's laptop).
    """
    from agent.domain.trust import TrustRejected, looks_signed, peek
    from agent.runtime.trust import ENVELOPE_LIMIT, TrustGate

    obj = peek(data, ENVELOPE_LIMIT)
    if not looks_signed(obj):
        return True, _("unsigned"), data
    try:
        cfg = _full_config(ctx.cfg) if ctx.cfg is not None else None
        if cfg is None:
            from agent.runtime.config import load_config

            cfg = load_config(ctx.args.config)
    except Exception:  # no readable config here: judge for the county the envelope names
        cfg = None
    roots = ctx.args.roots or (cfg.trust.roots_dir if cfg else "/etc/station-agent/trust")
    if cfg is not None:
        gate = TrustGate.for_config(cfg)
        gate.mode, gate.roots_dir = "required", Path(roots)
    else:
        county = obj.get("county") if isinstance(obj.get("county"), str) else "?"
        gate = TrustGate("required", Path(roots), Path("/nonexistent"), county, None)
    try:
        opened = gate.open(data, "schedule")
    except TrustRejected as exc:
        return False, _("signature does NOT hold: {reason}").format(reason=exc.reason()), b""
    v = opened.verified
    assert v is not None
    if v.cert_expires:
        who = _("signed by {signer}, certificate until {date}: holds").format(
            signer=v.signer(), date=v.cert_expires
        )
    else:
        who = _("signed by {signer}: holds").format(signer=v.signer())
    return True, who, opened.payload


def _full_config(cfg: Any) -> Any:
    """The agent's whole config (its ``trust`` section), where stationctl read a light one."""
    if hasattr(cfg, "trust"):
        return cfg
    from agent.runtime.config import ConfigError, load_config

    try:
        return load_config(cfg.source)
    except ConfigError as exc:
        raise CtlError(str(exc), EXIT_FAIL) from None


def validate(ctx: Ctx) -> int:
    from agent.adapters.schedule_files import parse_untrusted
    from agent.domain.schedule import ScheduleRejected

    args = ctx.args
    data = _read(args.file)
    holds, who, payload = _signature(ctx, data)
    try:
        if not holds:
            raise ScheduleRejected(args.file, [who])
        doc = parse_untrusted(payload, args.file)
    except ScheduleRejected as exc:
        if ctx.json:
            print(json.dumps({"valid": False, "problems": exc.problems}, ensure_ascii=False))
        else:
            print(_("{file}: not valid:").format(file=args.file), file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
        return EXIT_FAIL
    if ctx.json:
        out: dict[str, Any] = {"valid": True, "version": doc.version, "items": len(doc.items)}
        if payload is not data:
            out["signature"] = who  # only a signed file says who signed it
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(f"{args.file}: {who}")
        print(
            ngettext(
                "{file}: valid (version {version}, {n} item)",
                "{file}: valid (version {version}, {n} items)",
                len(doc.items),
            ).format(file=args.file, version=doc.version, n=len(doc.items))
        )
    return EXIT_OK


def next_cmd(ctx: Ctx) -> int:
    from agent.adapters.schedule_files import parse_untrusted
    from agent.domain.planner import plan
    from agent.domain.schedule import ScheduleRejected

    args = ctx.args
    try:
        doc = parse_untrusted(_read(args.file), args.file, timezone=_station_timezone(ctx))
    except ScheduleRejected as exc:
        print(_("{file}: not valid:").format(file=args.file), file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_FAIL
    now = time.time()
    layer = doc.layer or "terminal"
    p = plan({layer: doc}, now, now + args.days * 86400)
    tz = doc.tz
    rows = []
    for occ in p.occurrences:
        if occ.start < now:
            continue
        rows.append(
            {
                "start": dt.datetime.fromtimestamp(occ.start, tz).isoformat(timespec="minutes"),
                "end": dt.datetime.fromtimestamp(occ.end, tz).isoformat(timespec="minutes"),
                "item": occ.item.id,
                "course_id": occ.item.course.id,
                "title": occ.item.course.title,
                "media": occ.item.course.media,
                "priority": occ.priority,
                "cut_by": p.cut_by.get(occ.key),
            }
        )
    if ctx.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return EXIT_OK
    if not rows:
        print(_("No sessions in the next {days} days.").format(days=f"{args.days:g}"))
        return EXIT_OK
    table_rows = []
    for r in rows:
        note = _("cut short by {item}").format(item=r["cut_by"]) if r["cut_by"] else ""
        when = f"{r['start'][:16].replace('T', ' ')}-{r['end'][11:16]}"
        table_rows.append([when, fit(r["course_id"], 16), fit(r["title"], 28), note])
    for ln in table([_("When"), _("Course"), _("Title"), ""], table_rows):
        print(ln)
    return EXIT_OK


def _station_timezone(ctx: Ctx) -> str | None:
    """The station's ``timezone`` for a schedule that names none, when its config can be read
    (``next`` works without one too, e.g. on a technician's laptop)."""
    if ctx.cfg is not None:
        return str(ctx.cfg.timezone)
    from agent.cli.stationctl.lightcfg import NotLight, load_light

    try:
        return load_light(ctx.args.config).timezone
    except (NotLight, OSError, ValueError):
        return None


def apply(ctx: Ctx) -> int:
    """Apply a schedule file, its signature checked like one from the county; ``--unsigned``
    (root only) takes an unsigned one where signatures are required, and says so to the county."""
    import getpass
    import os

    from agent.adapters.schedule_files import ScheduleStore
    from agent.domain.trust import looks_signed, peek
    from agent.runtime.trust import ENVELOPE_LIMIT, TrustGate
    from agent.runtime.trust_unsigned import note_unsigned

    args, cfg = ctx.args, ctx.cfg
    if args.unsigned and os.geteuid() != 0:
        raise CtlError(_("--unsigned may only be used as root"), EXIT_USAGE)
    data = _read(args.file)
    gate = TrustGate.for_config(_full_config(cfg))
    signed = looks_signed(peek(data, ENVELOPE_LIMIT))
    parsed = gate.read_schedule(
        data, args.file, timezone=cfg.timezone, layer=args.layer, unsigned_ok=args.unsigned
    )
    store = ScheduleStore(cfg.state_dir, timezone=cfg.timezone)
    result = store.apply(
        data,
        args.file,
        layer=args.layer,
        terminal=cfg.terminal,
        county=cfg.county,
        parsed=parsed,
    )
    if result.status == "applied" and not signed and gate.mode == "required":
        note_unsigned(
            cfg.state_dir,
            {
                "kind": "schedule",
                "file": str(Path(args.file).resolve()),
                "layer": result.layer,
                "version": result.version,
                "user": os.environ.get("SUDO_USER") or getpass.getuser(),
            },
        )
    told = result.status == "applied" and _tell_the_agent(cfg.socket_path)
    if ctx.json:
        print(json.dumps({**result.to_json(), "agent_reloaded": told}, ensure_ascii=False))
        return EXIT_OK if result.status == "applied" else EXIT_FAIL
    status = {
        "applied": _("applied"),
        "stale": _("not applied: not newer than the schedule in force"),
        "rejected": _("rejected"),
    }.get(result.status, result.status)
    print(
        _("{file}: {layer} schedule version {version}: {status}").format(
            file=args.file,
            layer=layer_name(result.layer),
            version="?" if result.version is None else result.version,
            status=status,
        )
    )
    for reason in result.reasons:
        print(f"  {reason}")
    if told:
        print(_("The running agent has taken it."))
    elif result.status == "applied":
        print(_("The agent takes it when it next starts or looks at its files."))
    return EXIT_OK if result.status == "applied" else EXIT_FAIL


def _tell_the_agent(socket_path: Any) -> bool:
    """Ask a running agent to re-read its schedules now; False when it cannot be asked."""
    from agent.cli.stationctl.client import AgentUnavailable, request

    try:
        return bool(request(socket_path, "reload", timeout=10.0).get("ok"))
    except (AgentUnavailable, OSError):
        return False
