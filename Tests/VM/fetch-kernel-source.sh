#!/usr/bin/env bash
# Fetch Debian's linux-source-<series> package (the kernel tree as a tarball inside a .deb) through a
# private apt configuration, without touching the machine's own apt state, and unpack it.
#
# usage: fetch-kernel-source.sh SERIES SUITE DEST
#   SERIES  kernel series, e.g. 7.2
#   SUITE   Debian suite that carries linux-source-SERIES, e.g. sid
#   DEST    folder that receives linux-source-SERIES/ (the unpacked tree)
#
# The archive address is read from the machine's own apt sources, so this works wherever apt works.
set -euo pipefail

series=$1 suite=$2 dest=$3
mkdir -p "$dest"
if [ -f "$dest/linux-source-$series/Makefile" ]; then
  echo "kernel source already unpacked in $dest/linux-source-$series"
  exit 0
fi

# The first Debian archive URI the machine itself uses (not the security one).
uri=$(grep -h -E '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
if [ -z "$uri" ]; then
  uri=$(grep -h -E '^\s*deb\s' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
fi
[ -n "$uri" ] || { echo "fetch-kernel-source: no Debian archive found in the machine's apt sources" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/parts" "$work/prefs"
cat > "$work/sources.list" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main
EOF
aptopts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/parts"
         -o "Dir::Etc::PreferencesParts=$work/prefs" -o "Dir::State::Lists=$work/lists"
         -o "Dir::Cache=$work/cache" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root" -o "APT::Get::List-Cleanup=0")
apt-get "${aptopts[@]}" -q update >/dev/null
(cd "$work" && apt-get "${aptopts[@]}" -q download "linux-source-$series" >/dev/null)
deb=$(ls "$work"/linux-source-"$series"_*.deb | head -n1)
echo "fetched $(basename "$deb")"
dpkg-deb -x "$deb" "$work/x"
tarball=$(ls "$work"/x/usr/src/linux-source-"$series".tar.* | head -n1)
tar -C "$dest" -xf "$tarball"
echo "unpacked into $dest/linux-source-$series"
