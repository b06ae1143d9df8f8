#!/bin/sh
# Install the station agent from this folder with no network (Debian 12, arm64/armhf/amd64):
#   sudo ./install-offline.sh          asks before installing
#   sudo ./install-offline.sh -y       does not ask
# apt sees only repo/<this machine's architecture>/ on this stick (plus what is installed), then
# installs ./station-agent_*.deb with the dependencies it lacks. The system's own apt sources and
# lists are not touched.
set -e

HERE=$(cd "$(dirname "$0")" && pwd)
ARCH=$(dpkg --print-architecture)
if [ "$(id -u)" -ne 0 ]; then
    echo "install-offline.sh: run as root: sudo $0 $*" >&2
    exit 1
fi
if [ ! -f "$HERE/repo/$ARCH/Packages" ]; then
    echo "install-offline.sh: this stick has no packages for $ARCH (only: $(ls "$HERE/repo" | tr '\n' ' '))" >&2
    exit 1
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# A path without spaces for apt (stick mount points often have them).
ln -s "$HERE/repo/$ARCH" "$TMP/repo"
mkdir -p "$TMP/lists/partial" "$TMP/parts"
echo "deb [trusted=yes] file:$TMP/repo ./" > "$TMP/sources.list"

set -- -o "Dir::Etc::SourceList=$TMP/sources.list" -o "Dir::Etc::SourceParts=$TMP/parts" \
    -o "Dir::State::Lists=$TMP/lists" -o "APT::Get::List-Cleanup=false" \
    -o "APT::Sandbox::User=root" "$@"
apt-get "$@" update -q > /dev/null
cd "$HERE"
apt-get --no-install-recommends "$@" install ./station-agent_*_all.deb
# The province's root keys, when the technician put them on the stick (roots/*.pub): without them
# a terminal that requires signatures refuses every schedule (docs/trust.md).
if ls "$HERE"/roots/*.pub >/dev/null 2>&1; then
    install -d -m 0755 /etc/station-agent/trust
    install -m 0644 "$HERE"/roots/*.pub /etc/station-agent/trust/
    echo "install-offline.sh: root keys installed: $(ls "$HERE"/roots/*.pub | wc -l)"
elif ! ls /etc/station-agent/trust/*.pub >/dev/null 2>&1; then
    echo "install-offline.sh: warning: no root key in /etc/station-agent/trust; put the province's roots/*.pub on the stick" >&2
fi
