#!/usr/bin/env bash
# Check systemd/station-agent.service under a REAL systemd on a machine where systemd is not
# running (a build machine, a CI container): a throwaway systemd is started as PID 1 in private
# namespaces and runs the shipped unit with only ExecStart= swapped (and DefaultDependencies=no).
# What it checks: readiness over sd_notify, the watchdog killing a hung core (with stacks in the
# log), adjtimex reads with and without ProtectClock=, W^X with libvlc and ctypes callbacks,
# the syscall filter while VLC plays WAV and H.264/MP4, PrivateUsers= with device groups, the
# read-only system, and the real agent playing a schedule with an admin using stationctl.
#
#   sudo tests/ops/sandbox/run.sh [--keep]        (about 40 s; needs root, unshare, systemd)
#
# Safety, because a PID 1 does things to a machine: the host filesystem is bind-mounted
# READ-ONLY as the new root, everything writable (/tmp, /run, /var/*, /dev) is a private tmpfs,
# /proc/sys is read-only, the network namespace is private, the units that touch a system at
# boot are masked, nothing pulls sysinit.target, and PID 1 runs without CAP_SYS_MODULE,
# CAP_SYS_TIME, CAP_SYS_BOOT, CAP_SYS_RAWIO, CAP_MKNOD. (An earlier, unprotected attempt let
# systemd-tmpfiles empty the host's /tmp: do not loosen this.)
#
# Needs the source tree on the root filesystem (it is seen read-only inside at the same path),
# /usr/bin/python3 with venv, and pip access to psutil, python-vlc, PyYAML, paho-mqtt.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
UNIT=$REPO/systemd/station-agent.service
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

die() {
  echo "sandbox: $*" >&2
  exit 2
}
[ "$(id -u)" -eq 0 ] || die "needs root"
command -v unshare >/dev/null || die "needs unshare (util-linux)"
[ -x /lib/systemd/systemd ] || die "needs systemd installed (apt-get install systemd)"
[ -x /usr/bin/python3 ] || die "needs /usr/bin/python3"
if [ -d /run/systemd/system ]; then
  echo "sandbox: note: systemd runs this machine; the check still uses its own PID 1" >&2
fi

WORK=$(mktemp -d /var/tmp/station-sandbox.XXXXXX)
chmod 755 "$WORK"
CG_NAME=station-sandbox-$$
PID1=""
UNSHARE=""
cleanup() {
  if [ -n "$PID1" ] && kill -0 "$PID1" 2>/dev/null; then
    kill -9 "$PID1" 2>/dev/null || true
  fi
  [ -z "$UNSHARE" ] || wait "$UNSHARE" 2>/dev/null || true
  local d
  for d in /sys/fs/cgroup/*/"$CG_NAME" /sys/fs/cgroup/"$CG_NAME"; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  if [ "$KEEP" -eq 0 ]; then
    rm -rf "$WORK"
  else
    echo "sandbox: kept $WORK"
  fi
}
trap cleanup EXIT

echo "sandbox: preparing in $WORK"
# The service cannot see /root or /home (ProtectHome=), so the venv uses the system Python.
/usr/bin/python3 -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --disable-pip-version-check \
  psutil python-vlc PyYAML paho-mqtt 2>&1 | grep -v '^WARNING: Location' || true
[ -x "$WORK/venv/bin/python" ] && "$WORK/venv/bin/python" -c 'import psutil, vlc, yaml, paho' ||
  die "could not install psutil, python-vlc, PyYAML, paho-mqtt into the sandbox venv"
mkdir -p "$WORK/media" "$WORK/out" "$WORK/newroot"
chmod 777 "$WORK/out"
AGENT_SOURCE=$REPO "$WORK/venv/bin/python" "$HERE/media.py" "$WORK/media"
cp "$HERE/probe.py" "$HERE/hang.py" "$WORK/"

# Accounts seen inside: the service user, an admin (tech) and a stranger, on free ids.
free_id() {
  local i=$1
  while getent passwd "$i" >/dev/null || getent group "$i" >/dev/null; do i=$((i + 1)); done
  echo "$i"
}
UA=$(free_id 61000)
GA=$(free_id $((UA + 1)))
UT=$(free_id $((GA + 1)))
UO=$(free_id $((UT + 1)))
cp /etc/passwd "$WORK/passwd"
cp /etc/group "$WORK/group"
sed -i -E '/^(station-agent|stationadmin|tech|stranger):/d' "$WORK/passwd" "$WORK/group"
sed -i -E 's/^(audio|video|render):([^:]*):([^:]*):(.+)$/\1:\2:\3:\4,station-agent/;
  s/^(audio|video|render):([^:]*):([^:]*):$/\1:\2:\3:station-agent/' "$WORK/group"
cat >>"$WORK/passwd" <<EOF
station-agent:x:$UA:$UA::/var/lib/station-agent:/usr/sbin/nologin
tech:x:$UT:$UT::/nonexistent:/bin/sh
stranger:x:$UO:$UO::/nonexistent:/bin/sh
EOF
cat >>"$WORK/group" <<EOF
station-agent:x:$UA:
stationadmin:x:$GA:station-agent,tech
tech:x:$UT:
stranger:x:$UO:
EOF
AUDIO_GID=$(getent group audio | cut -d: -f3)

cat >"$WORK/agent.yaml" <<'EOF'
terminal: sandbox-001
county: sandbox
timezone: Asia/Shanghai
content_dir: /var/lib/station-agent/content
state_dir: /var/lib/station-agent
schedule_dir: /var/lib/station-agent/inbox
schedule_poll_seconds: 1
vlc:
  options: ["--vout=dummy", "--aout=dummy", "--no-video-title-show", "--quiet"]
  preroll_seconds: 2
EOF

cat >"$WORK/inner.sh" <<EOF
#!/bin/bash
set -euo pipefail
R=$WORK/newroot
mount --make-rprivate /
mount --bind / \$R
mount -o remount,bind,ro \$R
mount -t proc proc \$R/proc
mount --bind \$R/proc/sys \$R/proc/sys
mount -o remount,bind,ro \$R/proc/sys
mount -t sysfs -o ro sysfs \$R/sys
mount -t tmpfs -o mode=755 tmpfs \$R/sys/fs/cgroup
if [ -d /sys/fs/cgroup/unified ] || [ -d /sys/fs/cgroup/systemd ]; then
  for c in systemd unified devices pids memory cpu cpuacct; do mkdir \$R/sys/fs/cgroup/\$c; done
  mount -t cgroup -o none,name=systemd cgroup \$R/sys/fs/cgroup/systemd
  mount -t cgroup2 cgroup2 \$R/sys/fs/cgroup/unified
  for c in devices pids memory cpu cpuacct; do mount -t cgroup -o \$c cgroup \$R/sys/fs/cgroup/\$c; done
else
  umount \$R/sys/fs/cgroup
  mount -t cgroup2 cgroup2 \$R/sys/fs/cgroup
fi
mount -t tmpfs -o mode=755 tmpfs \$R/dev
for n in null zero full random urandom tty; do touch \$R/dev/\$n; mount --bind /dev/\$n \$R/dev/\$n; done
mkdir \$R/dev/shm \$R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs \$R/dev/shm
for d in tmp run var/tmp var/lib var/log var/cache root home; do mount -t tmpfs -o mode=755 tmpfs \$R/\$d; done
chmod 1777 \$R/tmp \$R/var/tmp
mount --bind $WORK \$R/srv
mount -o remount,bind,ro \$R/srv
mount --bind $WORK/out \$R/srv/out
mount --bind $WORK/passwd \$R/etc/passwd
mount --bind $WORK/group \$R/etc/group
install -d -m 2750 -o $UA -g $GA \$R/var/lib/station-agent \$R/var/lib/station-agent/content \
  \$R/var/lib/station-agent/content/courses \$R/var/lib/station-agent/inbox
install -m 0640 -o $UA -g $GA $WORK/media/tone.wav $WORK/media/clip.mp4 \$R/var/lib/station-agent/content/courses/
mkdir -p \$R/run/sandbox \$R/run/systemd/system
echo only-audio-may-read > \$R/run/sandbox/audio-only.txt
chown 0:$AUDIO_GID \$R/run/sandbox/audio-only.txt
chmod 0640 \$R/run/sandbox/audio-only.txt
for u in sysinit.target basic.target local-fs.target sockets.target timers.target paths.target \
  swap.target remote-fs.target getty.target network.target network-online.target \
  time-sync.target systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service \
  systemd-tmpfiles-clean.timer systemd-udevd.service systemd-udev-trigger.service \
  systemd-sysctl.service systemd-modules-load.service systemd-timesyncd.service \
  systemd-random-seed.service systemd-update-utmp.service systemd-remount-fs.service \
  systemd-sysusers.service systemd-networkd.service systemd-resolved.service \
  systemd-time-wait-sync.service systemd-firstboot.service systemd-machine-id-commit.service \
  cron.service; do
  ln -s /dev/null \$R/run/systemd/system/\$u
done
printf '[Unit]\nDescription=sandbox\nDefaultDependencies=no\nWants=systemd-journald.service\n' \
  > \$R/run/systemd/system/sandbox.target
cd \$R
pivot_root . mnt
umount -l /mnt
exec /usr/bin/setpriv --bounding-set -sys_module,-sys_time,-sys_boot,-sys_rawio,-wake_alarm,-mknod \
  /usr/bin/env -i container=station-sandbox PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  /lib/systemd/systemd --unit=sandbox.target --log-target=journal --show-status=no
EOF
chmod 755 "$WORK/inner.sh"

# Move into a cgroup of our own so the new cgroup namespace is rooted there.
for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
  [ -f "$h/cgroup.procs" ] && mkdir -p "$h/$CG_NAME"
done
(
  for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
    [ -f "$h/$CG_NAME/cgroup.procs" ] || continue
    echo "$BASHPID" >"$h/$CG_NAME/cgroup.procs" 2>/dev/null || true # cpuset refuses: fine
  done
  exec unshare --mount --pid --fork --uts --ipc --net --cgroup "$WORK/inner.sh"
) >"$WORK/inner.log" 2>&1 &
UNSHARE=$!
for _ in $(seq 50); do
  PID1=$(pgrep -P "$UNSHARE" || true)
  [ -n "$PID1" ] && break
  sleep 0.1
done
[ -n "$PID1" ] || die "systemd did not start: $(cat "$WORK/inner.log")"
IN() { nsenter -t "$PID1" -m -p -r -w "$@"; }
for _ in $(seq 100); do
  state=$(IN systemctl is-system-running 2>/dev/null || true)
  [ "$state" = running ] || [ "$state" = degraded ] && break
  sleep 0.1
done
echo "sandbox: systemd $(IN systemctl --version | head -n 1 | cut -d' ' -f2) is PID 1 ($state)"

# variant NAME EXEC [drop-in lines...]: the shipped unit with another ExecStart=.
variant() {
  local name=$1 exec_line=$2
  shift 2
  sed -e "s|^ExecStart=.*|ExecStart=$exec_line|" "$UNIT" >"$WORK/out/$name.service"
  {
    printf '[Unit]\nDefaultDependencies=no\n[Service]\nRestart=no\n'
    echo "StandardOutput=file:/srv/out/$name.out"
    echo "StandardError=file:/srv/out/$name.err"
    echo "Environment=AGENT_SOURCE=$REPO GROUP_FILE=/run/sandbox/audio-only.txt"
    local line
    for line in "$@"; do echo "$line"; done
  } >"$WORK/out/$name.conf"
  IN sh -c "cp /srv/out/$name.service /run/systemd/system/ &&
    mkdir -p /run/systemd/system/$name.service.d &&
    cp /srv/out/$name.conf /run/systemd/system/$name.service.d/sandbox.conf &&
    systemctl daemon-reload"
}
wait_inactive() { # NAME SECONDS
  local i
  for i in $(seq $(($2 * 10))); do
    case "$(IN systemctl is-active "$1" 2>/dev/null || true)" in
      active | activating | deactivating | reloading) sleep 0.1 ;;
      *) return 0 ;;
    esac
  done
  return 1
}
PY=/srv/venv/bin/python

echo "sandbox: probe under the shipped unit"
variant probe "$PY /srv/probe.py"
IN systemctl start probe.service || true
wait_inactive probe.service 60

echo "sandbox: probe with ProtectClock=yes"
variant clock "$PY /srv/probe.py" "ProtectClock=yes"
IN systemctl start clock.service || true
wait_inactive clock.service 60

echo "sandbox: watchdog (WatchdogSec=3s, the core hangs after 4 s)"
variant hang "$PY /srv/hang.py 4" "WatchdogSec=3s"
IN systemctl start hang.service || true
wait_inactive hang.service 30
IN systemctl show -p Result -p ExecMainExitTimestampMonotonic hang.service >"$WORK/out/hang.show"

echo "sandbox: the agent plays a schedule (Type=exec until the daemon sends READY)"
"$WORK/venv/bin/python" - "$WORK/out/schedule.json" <<'EOF'
import datetime as dt, json, sys, time
from zoneinfo import ZoneInfo
now = dt.datetime.now(ZoneInfo("Asia/Shanghai")).replace(microsecond=0)
items = [
    {"id": f"s{i}", "at": (now + dt.timedelta(seconds=at)).replace(tzinfo=None).isoformat(),
     "slot_minutes": 0.15, "course": {"id": f"C{i}", "title": f"course {i}", "media": media}}
    for i, (at, media) in enumerate([(8, "courses/tone.wav"), (20, "courses/clip.mp4")])
]
doc = {"version": int(time.time()), "timezone": "Asia/Shanghai", "items": items}
json.dump(doc, open(sys.argv[1], "w"))
EOF
IN install -o "$UA" -g "$GA" -m 0640 /srv/out/schedule.json /var/lib/station-agent/inbox/s.json
IN touch -d '-30 seconds' /var/lib/station-agent/inbox/s.json
variant agent "/usr/bin/env PYTHONPATH=$REPO $PY -m agent -c /srv/agent.yaml --duration 32" \
  "Type=exec"
IN systemctl start agent.service
sleep 4
CTL="cd /; PYTHONPATH=$REPO $PY -m agent.cli.stationctl -c /srv/agent.yaml --lang en"
IN setpriv --reuid="$UT" --regid="$UT" --init-groups sh -c "$CTL stop" \
  >"$WORK/out/admin.txt" 2>&1 && echo ok >>"$WORK/out/admin.rc" || echo fail >>"$WORK/out/admin.rc"
IN setpriv --reuid="$UO" --regid="$UO" --init-groups sh -c "$CTL stop" \
  >"$WORK/out/stranger.txt" 2>&1 && echo ok >>"$WORK/out/stranger.rc" || echo fail >>"$WORK/out/stranger.rc"
wait_inactive agent.service 60
IN sh -c "$CTL --json records" >"$WORK/out/records.json" 2>"$WORK/out/records.err" || true
IN journalctl --no-pager -o short-monotonic >"$WORK/out/journal.txt" 2>&1 || true

# Verdicts.
"$WORK/venv/bin/python" - "$WORK/out" <<'EOF'
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        return json.load(open(os.path.join(out, name)))
    except Exception as exc:
        return {"_error": f"{name}: {exc}"}
def text(name):
    try:
        return open(os.path.join(out, name)).read()
    except OSError:
        return ""
p, c = load("probe.out"), load("clock.out")
show = dict(l.split("=", 1) for l in text("hang.show").split())
hang_at = [l for l in text("hang.out").split() if l.startswith("hang_at_monotonic=")]
delay = None
if hang_at and show.get("ExecMainExitTimestampMonotonic", "0") != "0":
    delay = int(show["ExecMainExitTimestampMonotonic"]) / 1e6 - float(hang_at[0].split("=")[1])
records = load("records.json")
records = records if isinstance(records, list) else records.get("records", [])
outcomes = {r.get("course_id"): r.get("outcome") for r in records if isinstance(r, dict)}
checks = [
    ("READY=1 reached systemd (Type=notify unit became active)", p.get("ready_sent") is True and p.get("watchdog_interval") == 60.0),
    ("adjtimex(modes=0) readable under the shipped unit", (p.get("adjtimex_read") or {}).get("ret", -1) >= 0),
    ("ProtectClock=yes denies even the read (why it is off)", (c.get("adjtimex_read") or {}).get("errno") == "EPERM"),
    ("W^X: writable+executable mmap refused", p.get("mmap_write_exec") == "EPERM"),
    ("ctypes callbacks work under MemoryDenyWriteExecute", p.get("ctypes_callback") == 42),
    ("VLC plays WAV to the end", (p.get("vlc_wav") or {}).get("state") == "Ended"),
    ("VLC plays H.264/MP4 to the end", (p.get("vlc_h264_mp4") or {}).get("state") == "Ended"),
    ("supplementary group still grants file access under PrivateUsers", p.get("group_only_file") == "only-audio-may-read"),
    ("system is read-only, state dir writable (0640)", (p.get("writes") or {}).get("/etc/probe.txt") == "EROFS" and str((p.get("writes") or {}).get("/var/lib/station-agent/probe.txt", "")).startswith("ok 0o640")),
    ("other users' processes hidden", p.get("other_users_processes_visible") == 0),
    ("/proc files the probes read are readable", all(isinstance(v, int) for v in (p.get("proc_reads") or {"x": None}).values())),
    ("getaddrinfo(AI_ADDRCONFIG) works (netlink)", p.get("getaddrinfo_addrconfig") is True),
    ("AF_PACKET refused", p.get("af_packet") == "EAFNOSUPPORT"),
    ("watchdog killed the hung core", show.get("Result") == "watchdog"),
    ("kill came within 1.5 x WatchdogSec of the last progress", delay is not None and 0 < delay <= 4.5 + 0.5),
    ("faulthandler printed the stacks", "Fatal Python error: Aborted" in text("hang.err") and "hang.py" in text("hang.err")),
    ("agent played both courses to completion", outcomes.get("C0") == "completed" and outcomes.get("C1") == "completed"),
    ("an admin (group stationadmin) may use stationctl", text("admin.rc").strip() == "ok"),
    ("a stranger may not", text("stranger.rc").strip() == "fail"),
]
for name, ok in checks:
    print(f"  {'PASS' if ok else 'FAIL'}  {name}")
print(f"  watchdog kill delay after last progress: {delay if delay is None else round(delay, 2)} s")
sys.exit(0 if all(ok for _, ok in checks) else 1)
EOF
