#!/usr/bin/env bash
# Install, upgrade or remove the station agent on a Debian 12 terminal (amd64 or arm64).
#
#   sudo scripts/install.sh                 install or upgrade (idempotent: run it again any time)
#   sudo scripts/install.sh --uninstall     remove program, units and service user; keep config,
#                                           state, records and content
#   sudo scripts/install.sh --purge         remove everything, including config and records
#
# Where things go (docs/operations.md has the full table):
#   /opt/station-agent/venvs/<version>-<hash>  one venv per installed source; venv -> the current one
#   /opt/station-agent/docs/                   operations manual (the unit's Documentation=)
#   /usr/local/bin/stationctl                  -> /opt/station-agent/venv/bin/stationctl
#   /usr/local/lib/systemd/system/             station-agent.service, station-agent-retry.timer
#   /usr/local/lib/{sysusers,tmpfiles}.d/      station-agent.conf (user, groups, state tree)
#   /etc/station-agent/agent.yaml              config, root:stationadmin 0640, never overwritten
#   /etc/sysctl.d/60-station-agent.conf        unprivileged ping for the agent's group
#   /var/lib/station-agent/{,content,inbox}    state (records store), course media, schedule inbox
#   logs                                       journald: journalctl -u station-agent
#
# Testing without a booted systemd: --root DIR puts the whole tree under DIR and only prints the
# steps that need the real system (apt, accounts, sysctl, systemctl). Accounts and the state tree
# are still made inside DIR when DIR/etc/passwd exists (systemd-sysusers/-tmpfiles --root), which
# is how an SD-card image can be prepared.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROG=install.sh

ROOT=""
ACTION=install
PURGE=0
APT=1
VENV=1
WHEELHOUSE=""
PIP_OPTS=""
CONFIG_TEMPLATE="$SRC/config/agent.example.yaml"
ROOTS_SRC=""
PYTHON=${PYTHON:-python3}

APT_PACKAGES=(python3 python3-venv libvlc5 vlc-plugin-base)

SERVICE=station-agent.service
TIMER=station-agent-retry.timer
USER_NAME=station-agent
ADMIN_GROUP=stationadmin
PREFIX=/opt/station-agent
ETC_DIR=/etc/station-agent
CONFIG=$ETC_DIR/agent.yaml
TRUST_DIR=$ETC_DIR/trust
STATE_DIR=/var/lib/station-agent
CONTENT_DIR=$STATE_DIR/content
INBOX_DIR=$STATE_DIR/inbox
UNIT_DIR=/usr/local/lib/systemd/system
SYSUSERS_FILE=/usr/local/lib/sysusers.d/station-agent.conf
TMPFILES_FILE=/usr/local/lib/tmpfiles.d/station-agent.conf
SYSCTL_FILE=/etc/sysctl.d/60-station-agent.conf
CTL_LINK=/usr/local/bin/stationctl
DROPIN_DIR=/etc/systemd/system/$SERVICE.d

usage() {
  cat <<EOF
Usage: $PROG [options]

  --uninstall            remove program, units and the service user; keep config and state
  --purge                like --uninstall, and also delete config, state, records and content
  --root DIR             install into DIR instead of / (tests, image building); steps that need
                         the live system are printed instead of run
  --no-apt               do not install system packages
  --skip-venv            do not build the Python venv (tests)
  --wheelhouse DIR       install Python packages from wheels in DIR only (offline install)
  --pip-opts "OPTS"      extra options for pip install (e.g. "--no-deps")
  --config-template F    config to copy when none exists (default: config/agent.example.yaml)
  --roots DIR            install the province root public keys (*.pub) from DIR into
                         /etc/station-agent/trust (the installed config requires signatures)
  -h, --help             this text
EOF
}

say() { echo "$PROG: $*"; }
warn() { echo "$PROG: warning: $*" >&2; }
die() {
  echo "$PROG: error: $*" >&2
  exit 1
}
# A step that needs the live system: run it, or in --root mode print it.
live() {
  if [ -n "$ROOT" ]; then
    say "skipped under --root: $*"
  else
    "$@"
  fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    --uninstall) ACTION=uninstall ;;
    --purge)
      ACTION=uninstall
      PURGE=1
      ;;
    --root)
      [ $# -ge 2 ] || die "--root needs a directory"
      ROOT=$2
      shift
      ;;
    --no-apt) APT=0 ;;
    --skip-venv) VENV=0 ;;
    --roots)
      [ $# -ge 2 ] || die "--roots needs a directory"
      ROOTS_SRC=$(cd "$2" && pwd)
      shift
      ;;
    --wheelhouse)
      [ $# -ge 2 ] || die "--wheelhouse needs a directory"
      WHEELHOUSE=$(cd "$2" && pwd)
      shift
      ;;
    --pip-opts)
      [ $# -ge 2 ] || die "--pip-opts needs a value"
      PIP_OPTS=$2
      shift
      ;;
    --config-template)
      [ $# -ge 2 ] || die "--config-template needs a file"
      CONFIG_TEMPLATE=$2
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
  shift
done

if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT=$(cd "$ROOT" && pwd)
  [ "$ROOT" != "/" ] || die "--root / is the live system: run without --root"
else
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 ...), or use --root DIR for a test tree"
fi

# Does systemd run this machine? (not in a chroot, a container build or under --root)
systemd_running() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }

# Numeric id of a user or group, from DIR/etc under --root, from NSS otherwise; empty if unknown.
uid_of() {
  if [ -n "$ROOT" ]; then
    [ -f "$ROOT/etc/passwd" ] && awk -F: -v n="$1" '$1 == n { print $3 }' "$ROOT/etc/passwd"
  else
    getent passwd "$1" | cut -d: -f3
  fi
  return 0
}
gid_of() {
  if [ -n "$ROOT" ]; then
    [ -f "$ROOT/etc/group" ] && awk -F: -v n="$1" '$1 == n { print $3 }' "$ROOT/etc/group"
  else
    getent group "$1" | cut -d: -f3
  fi
  return 0
}

# chown by name on the live system, by number inside --root (when DIR has the accounts).
set_owner() { # OWNER GROUP PATH...
  local owner=$1 group=$2 uid gid
  shift 2
  uid=$(uid_of "$owner")
  gid=$(gid_of "$group")
  if [ -n "$uid" ] && [ -n "$gid" ]; then
    chown "$uid:$gid" "$@"
  else
    say "skipped: chown $owner:$group $* (accounts not present)"
  fi
}

# Copy a file only when its content differs; prints whether it changed. Returns 0 if changed.
put_file() { # SRC DEST MODE
  local src=$1 dest=$ROOT$2 mode=$3
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    chmod "$mode" "$dest"
    return 1
  fi
  install -D -m "$mode" "$src" "$dest"
  say "installed $2"
  return 0
}

source_hash() {
  (
    cd "$SRC"
    {
      find agent -type f \( -name '*.py' -o -name '*.po' -o -name '*.mo' \) \
        -not -path '*/__pycache__/*' | LC_ALL=C sort | xargs -d '\n' sha256sum
      sha256sum pyproject.toml
    } | sha256sum | cut -c1-12
  )
}

project_version() {
  sed -n 's/^version *= *"\(.*\)"/\1/p' "$SRC/pyproject.toml" | head -n 1
}

# ---------------------------------------------------------------------------------------------
# install

install_packages() {
  [ "$APT" -eq 1 ] || {
    say "system packages: skipped (--no-apt)"
    return 0
  }
  if [ -n "$ROOT" ]; then
    say "skipped under --root: apt-get install --no-install-recommends ${APT_PACKAGES[*]}"
    return 0
  fi
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "system packages: present"
    return 0
  fi
  say "installing system packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

UNITS_CHANGED=0
install_system_files() {
  put_file "$SRC/systemd/station-agent.service" "$UNIT_DIR/$SERVICE" 0644 && UNITS_CHANGED=1
  put_file "$SRC/systemd/station-agent-retry.timer" "$UNIT_DIR/$TIMER" 0644 && UNITS_CHANGED=1
  put_file "$SRC/systemd/station-agent-sysusers.conf" "$SYSUSERS_FILE" 0644 || true
  put_file "$SRC/systemd/station-agent-tmpfiles.conf" "$TMPFILES_FILE" 0644 || true
  if [ -f "$SRC/docs/operations.md" ]; then
    put_file "$SRC/docs/operations.md" "$PREFIX/docs/operations.md" 0644 || true
  fi
  return 0
}

create_accounts() {
  if [ -n "$ROOT" ]; then
    if [ -f "$ROOT/etc/passwd" ] && command -v systemd-sysusers >/dev/null; then
      systemd-sysusers --root="$ROOT" "$(basename "$SYSUSERS_FILE")"
      say "accounts: created in $ROOT/etc by systemd-sysusers"
    else
      say "skipped under --root: create user $USER_NAME (groups audio video render $ADMIN_GROUP)" \
        "and group $ADMIN_GROUP (no $ROOT/etc/passwd)"
    fi
    return 0
  fi
  if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers "$SYSUSERS_FILE"
  else
    getent group "$ADMIN_GROUP" >/dev/null || groupadd --system "$ADMIN_GROUP"
    getent passwd "$USER_NAME" >/dev/null ||
      useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin --comment "Station agent" "$USER_NAME"
    local g
    for g in audio video render "$ADMIN_GROUP"; do
      getent group "$g" >/dev/null || groupadd --system "$g"
      usermod -a -G "$g" "$USER_NAME"
    done
  fi
  say "accounts: $USER_NAME ($(id -nG "$USER_NAME" | tr ' ' ',')), group $ADMIN_GROUP"
}

uid_exists() { # UID: is it a known account (in DIR/etc/passwd under --root)?
  if [ -n "$ROOT" ]; then
    [ -f "$ROOT/etc/passwd" ] && awk -F: -v u="$1" '$3 == u { found = 1 } END { exit !found }' \
      "$ROOT/etc/passwd"
  else
    getent passwd "$1" >/dev/null
  fi
}

create_state_tree() {
  local uid old o
  uid=$(uid_of "$USER_NAME")
  if [ -z "$uid" ]; then
    install -d -m 2750 "$ROOT$STATE_DIR" "$ROOT$CONTENT_DIR" "$ROOT$INBOX_DIR"
    chmod 2750 "$ROOT$STATE_DIR" "$ROOT$CONTENT_DIR" "$ROOT$INBOX_DIR"
    say "skipped: chown $USER_NAME:$ADMIN_GROUP $STATE_DIR $CONTENT_DIR $INBOX_DIR" \
      "(accounts not present)"
    return 0
  fi
  if ! command -v systemd-tmpfiles >/dev/null; then
    install -d -m 2750 -o "$uid" -g "$(gid_of "$ADMIN_GROUP")" \
      "$ROOT$STATE_DIR" "$ROOT$CONTENT_DIR" "$ROOT$INBOX_DIR"
  elif [ -n "$ROOT" ]; then
    systemd-tmpfiles --root="$ROOT" --create "$(basename "$TMPFILES_FILE")"
  else
    systemd-tmpfiles --create "$TMPFILES_FILE"
  fi
  # State kept by --uninstall outlives the service user; a new one may get another uid. Give the
  # files of uids that no longer exist to the new user (files of existing users stay theirs).
  old=$(find "$ROOT$STATE_DIR" -xdev -not -user "$uid" -printf '%U\n' | sort -u)
  for o in $old; do
    if ! uid_exists "$o"; then
      chown -R --from="$o" "$uid" "$ROOT$STATE_DIR"
      say "state: files of former uid $o given to $USER_NAME"
    fi
  done
}

# Province root public keys: readable by the agent, writable by root only. Without any, a
# terminal whose config requires signatures refuses every schedule, so say so loudly.
install_roots() {
  local key n=0
  install -d -m 0755 "$ROOT$TRUST_DIR"
  if [ -n "$ROOTS_SRC" ]; then
    for key in "$ROOTS_SRC"/*.pub; do
      [ -f "$key" ] || continue
      install -m 0644 "$key" "$ROOT$TRUST_DIR/$(basename "$key")"
      n=$((n + 1))
    done
    [ "$n" -gt 0 ] || die "--roots $ROOTS_SRC holds no *.pub root key"
    say "trust: installed $n root key(s) into $TRUST_DIR"
  fi
  if ! ls "$ROOT$TRUST_DIR"/*.pub >/dev/null 2>&1; then
    warn "no root key in $TRUST_DIR: with trust.signatures: required every document is refused" \
      "(install the province's keys with --roots DIR; docs/trust.md)"
  fi
}

# The example config uses paths relative to the repo; the installed one points at the state tree.
write_config() {
  local dest=$ROOT$CONFIG tmp key
  install -d -m 0750 "$ROOT$ETC_DIR"
  set_owner root "$ADMIN_GROUP" "$ROOT$ETC_DIR"
  if [ -e "$dest" ]; then
    say "config: kept existing $CONFIG"
    if [ -n "$(find "$dest" -perm -o=r)" ]; then
      warn "$CONFIG is readable by everyone; it may hold credentials (chmod 0640 it)"
    fi
    return 0
  fi
  [ -f "$CONFIG_TEMPLATE" ] || die "no config at $CONFIG and no template at $CONFIG_TEMPLATE"
  tmp=$(mktemp "$ROOT$ETC_DIR/.agent.yaml.XXXXXX")
  sed -e "s|^state_dir:.*|state_dir: $STATE_DIR|" \
    -e "s|^content_dir:.*|content_dir: $CONTENT_DIR|" \
    -e "s|^schedule_dir:.*|schedule_dir: $INBOX_DIR|" \
    "$CONFIG_TEMPLATE" >"$tmp"
  for key in state_dir content_dir; do
    if ! grep -q "^$key:" "$tmp"; then
      case $key in
        state_dir) echo "state_dir: $STATE_DIR" >>"$tmp" ;;
        content_dir) echo "content_dir: $CONTENT_DIR" >>"$tmp" ;;
      esac
    fi
  done
  chmod 0640 "$tmp"
  mv -n "$tmp" "$dest"
  rm -f "$tmp"
  set_owner root "$ADMIN_GROUP" "$dest"
  say "config: wrote $CONFIG from $(basename "$CONFIG_TEMPLATE"); set terminal and county in it"
  CONFIG_IS_NEW=1
}

VENV_CHANGED=0
build_venv() {
  local venvs=$ROOT$PREFIX/venvs link=$ROOT$PREFIX/venv hash name target stage
  if [ "$VENV" -eq 0 ]; then
    say "venv: skipped (--skip-venv)"
    return 0
  fi
  hash=$(source_hash)
  name="$(project_version)-$hash"
  target=$venvs/$name
  if [ -L "$link" ] && [ "$(readlink "$link")" = "venvs/$name" ] &&
    [ -x "$target/bin/station-agent" ] && [ -f "$target/.complete" ]; then
    say "venv: up to date ($name)"
    return 0
  fi
  say "venv: building $PREFIX/venvs/$name"
  rm -rf "$target"
  mkdir -p "$venvs"
  # Build from a clean copy: pip writes build/ and *.egg-info next to the sources.
  stage=$(mktemp -d)
  STAGE=$stage
  cp -r "$SRC/pyproject.toml" "$SRC/agent" "$stage/"
  [ -f "$SRC/README.md" ] && cp "$SRC/README.md" "$stage/"
  find "$stage" -name __pycache__ -prune -exec rm -rf {} +
  "$PYTHON" -m venv "$target"
  local pip=("$target/bin/python" -m pip install --quiet --disable-pip-version-check)
  if [ -n "$WHEELHOUSE" ]; then
    pip+=(--no-index --find-links "$WHEELHOUSE")
  fi
  # shellcheck disable=SC2206  # PIP_OPTS is a list of words by design
  [ -n "$PIP_OPTS" ] && pip+=($PIP_OPTS)
  PIP_ROOT_USER_ACTION=ignore "${pip[@]}" "$stage"
  "$target/bin/python" -c 'import agent' || die "the new venv cannot import the agent"
  [ -x "$target/bin/station-agent" ] || die "the new venv has no station-agent entry point"
  touch "$target/.complete"
  rm -rf "$stage"
  # Switch atomically: the unit always sees a complete venv, the old one or the new one.
  ln -sfn "venvs/$name" "$link.new"
  mv -T "$link.new" "$link"
  VENV_CHANGED=1
  say "venv: $PREFIX/venv -> venvs/$name"
  # Keep the previous venv for a manual rollback; remove older ones.
  local keep prev
  prev=$(ls -1t "$venvs" | grep -vx "$name" | head -n 1 || true)
  for keep in $(ls -1 "$venvs"); do
    if [ "$keep" != "$name" ] && [ "$keep" != "$prev" ]; then
      rm -rf "${venvs:?}/$keep"
      say "venv: removed old $keep"
    fi
  done
}

link_stationctl() {
  mkdir -p "$ROOT$(dirname "$CTL_LINK")"
  if [ "$(readlink "$ROOT$CTL_LINK" 2>/dev/null)" != "$PREFIX/venv/bin/stationctl" ]; then
    ln -sfn "$PREFIX/venv/bin/stationctl" "$ROOT$CTL_LINK"
    say "linked $CTL_LINK"
  fi
}

# The ICMP probe needs an unprivileged ping socket: the unit's NoNewPrivileges= keeps the ping
# binary's file capability from working, and Debian leaves net.ipv4.ping_group_range closed.
# Open it for the agent's group only.
write_sysctl() {
  local gid tmp
  gid=$(gid_of "$ADMIN_GROUP")
  if [ -z "$gid" ]; then
    say "skipped: $SYSCTL_FILE (group $ADMIN_GROUP unknown)"
    return 0
  fi
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
# Written by station-agent's install.sh: unprivileged ICMP echo for the agent's group
# ($ADMIN_GROUP), used by its link probes. Remove with install.sh --uninstall.
net.ipv4.ping_group_range = $gid $gid
EOF
  if put_file "$tmp" "$SYSCTL_FILE" 0644; then
    live sysctl -q -p "$SYSCTL_FILE" || warn "could not apply $SYSCTL_FILE now (applies at boot)"
  fi
  rm -f "$tmp"
}

check_time_wait_sync() {
  local d
  for d in /etc/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
    if [ -e "$ROOT$d/sysinit.target.wants/systemd-time-wait-sync.service" ]; then
      warn "systemd-time-wait-sync.service is enabled: time-sync.target then waits for NTP," \
        "and the agent (ordered after it) would not start without a network." \
        "Disable it: systemctl disable systemd-time-wait-sync.service"
    fi
  done
}

enable_units() {
  if ! systemd_running; then
    say "skipped (systemd not running here): systemctl daemon-reload;" \
      "systemctl enable $SERVICE; systemctl enable --now $TIMER"
    return 0
  fi
  systemctl daemon-reload
  systemctl enable --quiet "$SERVICE"
  systemctl enable --quiet --now "$TIMER"
  if systemctl --quiet is-active "$SERVICE"; then
    if [ "$VENV_CHANGED" -eq 1 ] || [ "$UNITS_CHANGED" -eq 1 ]; then
      say "restarting $SERVICE for the new version"
      systemctl restart "$SERVICE"
    fi
  elif [ "${CONFIG_IS_NEW:-0}" -eq 1 ]; then
    say "enabled; edit $CONFIG, then: systemctl start $SERVICE" \
      "(the retry timer would start it within 10 minutes anyway)"
  else
    systemctl start --no-block "$SERVICE"
    say "started $SERVICE"
  fi
}

do_install() {
  say "installing from $SRC${ROOT:+ into $ROOT}"
  install_packages
  install_system_files
  create_accounts
  create_state_tree
  write_config
  install_roots
  build_venv
  link_stationctl
  write_sysctl
  check_time_wait_sync
  enable_units
  say "done"
}

# ---------------------------------------------------------------------------------------------
# uninstall

remove() { # PATH... (inside ROOT)
  local p
  for p in "$@"; do
    if [ -e "$ROOT$p" ] || [ -L "$ROOT$p" ]; then
      rm -rf "${ROOT}${p:?}"
      say "removed $p"
    fi
  done
}

do_uninstall() {
  say "removing the station agent${ROOT:+ from $ROOT}"
  if systemd_running; then
    systemctl disable --quiet --now "$TIMER" "$SERVICE" 2>/dev/null || true
  else
    say "skipped (systemd not running here): systemctl disable --now $TIMER $SERVICE"
  fi
  remove "$UNIT_DIR/$SERVICE" "$UNIT_DIR/$TIMER" "$SYSUSERS_FILE" "$TMPFILES_FILE" \
    "$SYSCTL_FILE" "$CTL_LINK" "$PREFIX"
  if systemd_running; then
    systemctl daemon-reload
  fi
  if [ -n "$ROOT" ]; then
    say "skipped under --root: userdel $USER_NAME"
  elif getent passwd "$USER_NAME" >/dev/null; then
    userdel "$USER_NAME"
    getent group "$USER_NAME" >/dev/null && groupdel "$USER_NAME"
    say "removed user $USER_NAME"
  fi
  if [ "$PURGE" -eq 1 ]; then
    remove "$ETC_DIR" "$STATE_DIR" "$DROPIN_DIR"
    if [ -n "$ROOT" ]; then
      say "skipped under --root: groupdel $ADMIN_GROUP"
    elif getent group "$ADMIN_GROUP" >/dev/null; then
      groupdel "$ADMIN_GROUP"
      say "removed group $ADMIN_GROUP"
    fi
  else
    say "kept: $ETC_DIR (config), $STATE_DIR (records, schedule, content), group $ADMIN_GROUP;" \
      "--purge removes them"
  fi
  say "done"
}

STAGE=""
trap '[ -z "$STAGE" ] || rm -rf "$STAGE"' EXIT

if [ "$ACTION" = install ]; then
  do_install
else
  do_uninstall
fi
