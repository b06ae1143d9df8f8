"""The systemd units: `systemd-analyze verify` with zero output, the exposure score, and the
settings that unattended operation depends on.

`systemd-analyze verify` checks that ExecStart= points at an executable, and the real one
(/opt/station-agent/venv/bin/station-agent) does not exist on a build machine. The test verifies a
copy of the unit in a temp dir whose ExecStart= path is swapped for an executable stub (arguments
unchanged); nothing else in the unit is altered. The security score is taken from the real file.
Needs the Debian `systemd` package (systemd-analyze, systemd-sysusers, systemd-tmpfiles).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = REPO / "systemd"
UNIT = SYSTEMD_DIR / "station-agent.service"
TIMER = SYSTEMD_DIR / "station-agent-retry.timer"
SYSUSERS = SYSTEMD_DIR / "station-agent-sysusers.conf"
TMPFILES = SYSTEMD_DIR / "station-agent-tmpfiles.conf"
REAL_EXEC = "/opt/station-agent/venv/bin/station-agent"
MAX_EXPOSURE = 2.0

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze not installed (apt-get install systemd)"
)


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value in order (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: assignment outside a section: {raw}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def last(section: dict[str, list[str]], key: str) -> str:
    assert key in section, f"missing {key}="
    return section[key][-1]


def seconds(value: str) -> float:
    """systemd time span ('5min', '60s', '10min 30s', '90') -> seconds."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hr": 3600, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    return total


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@pytest.fixture
def verifiable(tmp_path: Path) -> tuple[Path, Path]:
    """Copies of the service and timer, the service's ExecStart= binary swapped for a stub."""
    stub = tmp_path / "bin" / "station-agent"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = UNIT.read_text()
    assert text.count(f"ExecStart={REAL_EXEC} ") == 1
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(f"ExecStart={REAL_EXEC} ", f"ExecStart={stub} "))
    timer = tmp_path / TIMER.name
    shutil.copy(TIMER, timer)
    return unit, timer


@needs_analyze
def test_verify_prints_nothing(verifiable):
    unit, timer = verifiable
    result = run(ANALYZE, "verify", str(unit), str(timer))
    assert result.returncode == 0, result.stderr
    # verify exits 0 on unknown keys and typos; any line it prints is a finding.
    assert result.stdout == "" and result.stderr == "", result.stdout + result.stderr


@needs_analyze
def test_verify_harness_catches_a_typo(verifiable):
    unit, _ = verifiable
    unit.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHom=yes"))
    result = run(ANALYZE, "verify", str(unit))
    assert result.returncode == 0  # the reason this test exists: verify does not fail on typos
    assert "ProtectHom" in result.stdout + result.stderr


def overall_exposure(output: str) -> float:
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert match, output[-500:]
    return float(match.group(1))


@needs_analyze
def test_exposure_score_at_most_2():
    result = run(ANALYZE, "security", "--offline=yes", str(UNIT))
    score = overall_exposure(result.stdout)
    assert score <= MAX_EXPOSURE, result.stdout
    # --threshold counts in tenths and fails the command when the score is above it.
    gate = run(
        ANALYZE, "security", "--offline=yes", f"--threshold={int(MAX_EXPOSURE * 10)}", str(UNIT)
    )
    assert gate.returncode == 0, gate.stdout[-800:]


@needs_analyze
def test_key_protections_are_recognised_by_systemd():
    result = run(ANALYZE, "security", "--offline=yes", "--json=short", str(UNIT))
    items = {item["name"]: item for item in json.loads(result.stdout)}
    expected_set = [
        "NoNewPrivileges=",
        "CapabilityBoundingSet=~CAP_SYS_ADMIN",
        "CapabilityBoundingSet=~CAP_SYS_TIME",
        "AmbientCapabilities=",
        "User=/DynamicUser=",
        "ProtectSystem=",
        "ProtectHome=",
        "PrivateTmp=",
        "PrivateUsers=",
        "ProtectKernelTunables=",
        "ProtectKernelModules=",
        "ProtectKernelLogs=",
        "ProtectControlGroups=",
        "ProtectHostname=",
        "RestrictNamespaces=~user",
        "RestrictSUIDSGID=",
        "RestrictRealtime=",
        "LockPersonality=",
        "MemoryDenyWriteExecute=",
        "SystemCallArchitectures=",
        "SystemCallFilter=~@mount",
        "SystemCallFilter=~@module",
        "SystemCallFilter=~@raw-io",
        "SystemCallFilter=~@reboot",
        "SystemCallFilter=~@swap",
        "SystemCallFilter=~@debug",
        "SystemCallFilter=~@resources",
        "RestrictAddressFamilies=~AF_PACKET",
        "RestrictAddressFamilies=~…",
        "NotifyAccess=",
        "PrivateMounts=",
        "ProtectProc=",
    ]
    missing = [name for name in expected_set if not items[name]["set"]]
    assert missing == [], missing


def test_unattended_settings():
    unit = parse_unit(UNIT)
    svc, head = unit["Service"], unit["Unit"]
    assert last(svc, "Type") == "notify"
    assert last(svc, "NotifyAccess") == "main"
    assert last(svc, "Restart") == "always"
    assert 10 <= seconds(last(svc, "WatchdogSec")) <= 300
    assert seconds(last(svc, "RestartSec")) >= 1
    assert last(svc, "ExecStart") == f"{REAL_EXEC} -c /etc/station-agent/agent.yaml"
    assert last(svc, "User") == "station-agent"
    assert set(last(svc, "SupplementaryGroups").split()) >= {"audio", "video", "render"}
    # Python prints every thread's stack on the watchdog's SIGABRT.
    assert "PYTHONFAULTHANDLER=1" in " ".join(svc["Environment"])
    # Logs: journald only, with a per-service rate limit.
    assert seconds(last(svc, "LogRateLimitIntervalSec")) > 0
    assert int(last(svc, "LogRateLimitBurst")) > 0
    # Never waits for the network or for time sync to start playing.
    assert "network-online.target" not in " ".join(head.get("Wants", []) + head.get("Requires", []))
    assert "time-sync.target" in " ".join(head["After"])
    for key in ("Wants", "Requires", "BindsTo", "Requisite"):
        assert "time-sync" not in " ".join(head.get(key, []))
    # Reads adjtimex: ProtectClock would deny it, so it is off and adjtimex is allowed explicitly.
    assert last(svc, "ProtectClock") == "no"
    assert {"adjtimex", "clock_adjtime"} <= set(svc["SystemCallFilter"][-1].split())
    assert last(svc, "CapabilityBoundingSet") == ""
    # Devices: closed policy, DVB read-only.
    assert last(svc, "DevicePolicy") == "closed"
    devices = dict(entry.split() for entry in svc["DeviceAllow"])
    assert devices == {
        "char-drm": "rw",
        "char-fb": "rw",
        "char-alsa": "rw",
        "char-dvb": "r",
        "char-cec": "rw",
    }
    assert svc["ReadWritePaths"] == ["/var/lib/station-agent"]
    assert last(svc, "UMask") == "0027"


def test_start_limit_never_leaves_the_terminal_dead():
    unit = parse_unit(UNIT)
    timer = parse_unit(TIMER)
    head = unit["Unit"]
    interval = seconds(last(head, "StartLimitIntervalSec"))
    burst = int(last(head, "StartLimitBurst"))
    if interval == 0:
        return  # rate limiting off: Restart=always alone never gives up
    assert burst >= 3
    # Past the limit the unit stays failed until the retry timer starts it again.
    assert last(timer["Timer"], "Unit") == UNIT.name
    assert timer["Install"]["WantedBy"] == ["timers.target"]
    calendar = last(timer["Timer"], "OnCalendar")
    match = re.fullmatch(r"\*:0/(\d+)", calendar)
    assert match, calendar
    retry_every = int(match.group(1)) * 60
    assert retry_every > interval, "a retry inside the start-limit window would be refused"
    assert timer["Timer"].get("Persistent", ["no"])[-1] == "no"


@needs_analyze
def test_retry_timer_calendar_is_valid():
    timer = parse_unit(TIMER)
    result = run(ANALYZE, "calendar", last(timer["Timer"], "OnCalendar"))
    assert result.returncode == 0, result.stderr
    assert "Next elapse" in result.stdout


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """A root with the build machine's account databases, as an image builder would have."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow"):
        src = Path("/etc") / name
        if src.exists():
            shutil.copy(src, root / "etc" / name)
    (root / "usr/lib/sysusers.d").mkdir(parents=True)
    (root / "usr/lib/tmpfiles.d").mkdir(parents=True)
    shutil.copy(SYSUSERS, root / "usr/lib/sysusers.d/station-agent.conf")
    shutil.copy(TMPFILES, root / "usr/lib/tmpfiles.d/station-agent.conf")
    return root


def entries(path: Path) -> dict[str, list[str]]:
    out = {}
    for line in path.read_text().splitlines():
        fields = line.split(":")
        out[fields[0]] = fields
    return out


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers missing")
def test_sysusers_and_tmpfiles_create_the_expected_tree(image_root: Path):
    for _ in range(2):  # idempotent
        result = run("systemd-sysusers", f"--root={image_root}", "station-agent.conf")
        assert result.returncode == 0, result.stderr
    users = entries(image_root / "etc/passwd")
    groups = entries(image_root / "etc/group")
    user = users["station-agent"]
    assert user[5] == "/var/lib/station-agent" and user[6] == "/usr/sbin/nologin"
    assert int(user[2]) < 1000, "a system user"
    for group in ("audio", "video", "render", "stationadmin"):
        assert "station-agent" in groups[group][3].split(",")

    result = run("systemd-tmpfiles", f"--root={image_root}", "--create", "station-agent.conf")
    assert result.returncode == 0, result.stderr
    admin_gid = int(groups["stationadmin"][2])
    for sub in ("", "content", "inbox"):
        st = (image_root / "var/lib/station-agent" / sub).stat()
        assert st.st_mode & 0o7777 == 0o2750, (sub, oct(st.st_mode))
        assert st.st_uid == int(user[2]) and st.st_gid == admin_gid
