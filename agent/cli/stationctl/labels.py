"""Words the admin reads for the agent's codes: outcomes, triggers, levels, alarms, event kinds."""

from __future__ import annotations

from agent.cli.i18n import N_, _

OUTCOMES = {
    None: N_("playing"),
    "completed": N_("completed"),
    "stopped": N_("stopped"),
    "error": N_("failed"),
    "interrupted": N_("interrupted"),
    "skipped": N_("skipped"),
    "missed": N_("missed"),
}

TRIGGERS = {
    "schedule": N_("scheduled"),
    "admin": N_("on demand"),
    "remote": N_("remote"),
}

LEVELS = {"info": N_("info"), "warning": N_("warning"), "error": N_("error")}

SEVERITIES = {"critical": N_("critical"), "warning": N_("warning"), "info": N_("note")}

# Alarm name -> (what is wrong, what to do), in plain words.
ALARMS = {
    "link_down": (
        N_("The network link is down"),
        N_("Check the power of the modem or router and the network cable."),
    ),
    "link_degraded": (
        N_("The network link is slow or loses data"),
        N_("Check the network cable and the modem; if it stays, call the county technician."),
    ),
    "satellite_unlocked": (
        N_("The satellite receiver has no signal"),
        N_("Check the dish, its cable and the receiver (heavy rain or snow can cause this)."),
    ),
    "datacast_stale": (
        N_("No new content has arrived by satellite for a long time"),
        N_("Check the satellite receiver; ask the county technician."),
    ),
    "disk_low": (
        N_("The storage is almost full"),
        N_("Ask the county technician which old videos can be removed."),
    ),
    "disk_readonly": (
        N_("The storage can no longer be written (the card may be failing)"),
        N_("Call the county technician: the storage card may need replacing."),
    ),
    "overheat": (
        N_("The station PC is too hot"),
        N_("Keep its vents free and air the room."),
    ),
    "display_disconnected": (
        N_("No TV or screen is connected"),
        N_("Check the HDMI cable and that the TV has power."),
    ),
    "tv_off": (
        N_("The TV is switched off"),
        N_("Switch the TV on before a session."),
    ),
    "clock_unsynced": (
        N_("The clock has not been set from the network"),
        N_("Times may drift: connect the network so the clock can be set."),
    ),
    "undervoltage": (
        N_("The power supply is too weak"),
        N_("Use the original power adapter and check the power strip."),
    ),
    "playback_failing": (
        N_("Courses keep failing to play"),
        N_(
            "Run 'stationctl check'; if a video is damaged, ask the county technician for it again."
        ),
    ),
    "player_restarted": (
        N_("The video player had to be restarted"),
        N_("Nothing to do if courses play; if it repeats, call the county technician."),
    ),
    "media_quarantined": (
        N_("A video failed repeatedly and is skipped for a while"),
        N_("Ask the county technician to send that video again."),
    ),
    "store_corrupt": (
        N_("The viewing-record database was damaged and replaced"),
        N_("Call the county technician: the damaged copy is kept for recovery."),
    ),
    "disk_full": (
        N_("The storage was full; records were kept in memory"),
        N_("Ask the county technician which old videos can be removed."),
    ),
    "store_unwritable": (
        N_("The viewing-record database cannot be written"),
        N_("Records are kept in memory for now; call the county technician today."),
    ),
    "record_write_failed": (
        N_("A viewing record could not be saved at once"),
        N_("It is retried by itself; if this stays, call the county technician."),
    ),
    "record_write_bug": (
        N_("A viewing record was saved in an unexpected way"),
        N_("The record is kept; tell the county technician (a software fault)."),
    ),
    "side_job_failed": (
        N_("A background task of the station keeps failing"),
        N_("Run 'stationctl logs' and tell the county technician what it says."),
    ),
    "schedule_unreadable_terminal": (
        N_("The station's own schedule file is damaged"),
        N_("The station asks the county for it again; check the network."),
    ),
    "schedule_unreadable_county": (
        N_("The county schedule file is damaged"),
        N_("The station asks the county for it again; check the network."),
    ),
    "content_missing": (
        N_("A course video needed soon is not on the station yet"),
        N_(
            "See 'stationctl schedule'; check the network, or copy the videos from a USB stick: "
            "stationctl library import DIR"
        ),
    ),
    "content_fetch_failed": (
        N_("Course videos keep failing to download"),
        N_("Check the network; if it stays, call the county technician."),
    ),
    "content_no_space": (
        N_("Not enough storage space for the course videos"),
        N_("Ask the county technician which old videos can be removed."),
    ),
}

EVENT_KINDS = {
    "agent_started": N_("agent started"),
    "agent_stopped": N_("agent stopped"),
    "store_corrupt": N_("database damaged"),
    "record_started": N_("playing"),
    "record_completed": N_("completed"),
    "record_stopped": N_("stopped"),
    "record_error": N_("failed"),
    "record_interrupted": N_("interrupted"),
    "record_skipped": N_("skipped"),
    "record_missed": N_("missed"),
    "missed": N_("missed"),
    "late_start": N_("late start"),
    "playback_retry": N_("retry"),
    "preroll_failed": N_("preload failed"),
    "clock_hold": N_("clock wrong"),
    "clock_ok": N_("clock ok"),
    "clock_jump": N_("clock jumped"),
    "schedule_applied": N_("schedule applied"),
    "schedule_stale": N_("schedule too old"),
    "schedule_rejected": N_("schedule rejected"),
    "manifest_applied": N_("course list applied"),
    "manifest_stale": N_("course list too old"),
    "manifest_rejected": N_("course list rejected"),
    "content_fetched": N_("video downloaded"),
    "content_received": N_("video received"),
    "content_evicted": N_("video removed for space"),
    "alarm": N_("alarm"),
    "link_summary": N_("link summary"),
    "attendance": N_("attendance"),
    "control_socket": N_("control socket"),
}


def outcome(value: str | None) -> str:
    return _(OUTCOMES[value]) if value in OUTCOMES else str(value)


def trigger(value: str) -> str:
    return _(TRIGGERS[value]) if value in TRIGGERS else value


def level(value: str) -> str:
    return _(LEVELS[value]) if value in LEVELS else value


def severity(value: str) -> str:
    return _(SEVERITIES[value]) if value in SEVERITIES else value


def alarm(name: str) -> tuple[str, str]:
    if name in ALARMS:
        what, todo = ALARMS[name]
        return _(what), _(todo)
    return (
        _("Alarm: {name}").format(name=name),
        _("If it stays, call the county technician."),
    )


def event_kind(kind: str) -> str:
    return _(EVENT_KINDS[kind]) if kind in EVENT_KINDS else kind
