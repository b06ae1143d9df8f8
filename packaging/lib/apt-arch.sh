# Shared by scripts/usb-bundle and scripts/test-arch (sourced): apt pointed at another
# architecture's Debian 12 archive, with its own lists and an empty dpkg status, so the host's
# apt resolves and downloads arm64/armhf/amd64 packages without touching the host's state.
# Expects: CACHE (a folder under .cache), say() and die().

# The Debian 12 archives this machine's apt already uses ("URI SUITE" lines, main only), so no
# mirror name is written into the project; DEBIAN_MIRROR=URI overrides (all three suites).
debian_sources() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then
    echo "$DEBIAN_MIRROR bookworm"
    echo "$DEBIAN_MIRROR bookworm-updates"
    return 0
  fi
  apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT) $(IDENTIFIER)' 2>/dev/null |
    awk '$2 ~ /^bookworm(-updates|-security)?$/ && $3 == "main" && $4 == "Packages" {
      print $1, $2 }' | sort -u
}

# The main archive (for debootstrap): the one serving plain "bookworm".
debian_mirror() {
  debian_sources | awk '$2 == "bookworm" { print $1; exit }'
}

# apt options for ARCH; the lists are refreshed when older than a day (or APT_ARCH_UPDATE=1).
apt_arch_opts() { # ARCH -> sets APT_OPTS (array)
  local arch=$1 d=$CACHE/apt/$1
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/none"
  [ -f "$d/status" ] || : >"$d/status"
  local src=$d/sources.list
  debian_sources | while read -r uri suite; do
    echo "deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main"
  done >"$src.new"
  [ -s "$src.new" ] || die "found no Debian 12 (bookworm) archive in this machine's apt sources;" \
    "set DEBIAN_MIRROR=URI"
  mv "$src.new" "$src"
  APT_OPTS=(
    -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch"
    -o "Dir::State=$d" -o "Dir::State::Lists=$d/lists" -o "Dir::State::status=$d/status"
    -o "Dir::Cache=$d/cache" -o "Dir::Etc::SourceList=$src" -o "Dir::Etc::SourceParts=$d/none"
    -o "Dir::Etc::Preferences=$d/none/prefs" -o "Dir::Etc::PreferencesParts=$d/none"
    -o "APT::Install-Recommends=false" -o "Acquire::Languages=none"
    -o "Acquire::Check-Valid-Until=false" -o "Debug::NoLocking=true" -o "APT::Sandbox::User=root"
  )
  if [ "${APT_ARCH_UPDATE:-0}" = 1 ] || [ -z "$(find "$d/lists" -maxdepth 1 -name '*Packages*' \
    -mmin -1440 -print -quit)" ]; then
    say "apt lists for $arch: updating" >&2
    # A mirror caught mid-sync serves an index whose size differs from its Release; one mirror
    # here served a broken debian-security index for armhf for hours. Retry twice, then go on
    # with what arrived if the release's own index did (the bundle then lacks the security
    # suite's newer versions for this architecture, and says so); without it, stop.
    local try
    for try in 1 2 3; do
      apt-get "${APT_OPTS[@]}" -o Acquire::Retries=3 -q update >/dev/null && return 0
      [ "$try" -lt 3 ] || break
      say "apt lists for $arch: update failed, trying again in $((try * 30)) s" >&2
      sleep $((try * 30))
    done
    if [ -n "$(find "$d/lists" -maxdepth 1 -name '*dists_bookworm_main_binary-*Packages*' \
      -print -quit)" ]; then
      echo "$PROG: warning: some apt indexes for $arch could not be fetched (see above); going on" \
        "with the release's index: security updates for $arch may be missing from this bundle" >&2
    else
      die "apt-get update for $arch failed (3 tries) and the release's index is missing"
    fi
  fi
}

# Names=versions of what installing DEB on a minimal Debian 12 of ARCH adds: its dependency
# closure less the closure of the packages of priority "required" (what debootstrap's minbase
# installs, so what every Debian 12 has). Prints "name=version" lines.
apt_arch_needed() { # ARCH DEB
  local arch=$1 deb=$2 pkgs base required name
  apt_arch_opts "$arch"
  pkgs=$(apt_arch_closure "$deb") || die "apt could not resolve $deb for $arch"
  [ -n "$pkgs" ] || die "apt resolved nothing for $deb on $arch"
  required=$(apt-cache "${APT_OPTS[@]}" dumpavail |
    awk '/^Package: / { p = $2 } /^Priority: required/ { print p }' | sort -u)
  # shellcheck disable=SC2086  # a list of package names
  base=$(apt_arch_closure $required | sed 's/=.*//' | sort -u) ||
    die "apt could not resolve the required packages for $arch"
  for name in $pkgs; do
    case "$name" in station-agent=*) continue ;; esac
    grep -qx "${name%%=*}" <<<"$base" || echo "$name"
  done
}

# "name=version" for every package apt would install for ARGS on an empty system.
apt_arch_closure() { # PACKAGE|FILE...
  local out
  out=$(apt-get "${APT_OPTS[@]}" -q -s install "$@" 2>&1) || {
    echo "$out" | tail -n 5 >&2
    return 1
  }
  awk '/^Inst / { v = $3; gsub(/[()\[\]]/, "", v); print $2 "=" v }' <<<"$out"
}
