#!/usr/bin/env bash
# Installs the Debian 12 packages Ferry's tests need, and only the missing ones.
#
# usage: Tests/setup.sh [--no-vm]          install what is missing (as root), or say what to install
#        Tests/setup.sh --check swift|vm   exit 0 when that group is complete, 1 (naming what is missing) if not
#
# Quick when everything is there: dpkg-query is asked first, and apt-get (update, then install) runs
# only for packages that are missing. Without root, or without apt-get, it names the packages and
# exits 0: the tests that need them are skipped, each with a line saying what to install.
set -euo pipefail

# The Swift tests: python3-systemd and libsystemd-dev (with a C compiler) for the services written
# against systemd's libraries; util-linux for setpriv and prlimit; promtool and xmllint check metrics and the SVG.
swift_packages=(python3 python3-systemd libsystemd-dev gcc libc6-dev util-linux prometheus libxml2-utils)
# The VM test: qemu and busybox-static to boot, flex to libssl-dev to build the LUO test kernel from
# Debian's linux-source package (fetched with apt-get download, checked with the archive keyring).
vm_packages=(qemu-system-x86 busybox-static cpio flex bison bc libelf-dev libssl-dev xz-utils binutils make gcc
             python3 debian-archive-keyring ca-certificates debootstrap e2fsprogs)

missing_from() {
  local package
  for package in "$@"; do
    if ! dpkg-query -W -f='${db:Status-Status}\n' "$package" 2>/dev/null | grep -qx installed; then
      echo "$package"
    fi
  done
}

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "setup: not a Debian system (no dpkg-query); install the equivalents of: ${swift_packages[*]} (and for the VM test: ${vm_packages[*]})" >&2
  [ "${1:-}" = --check ] && exit 1
  exit 0
fi

if [ "${1:-}" = --check ]; then
  case "${2:-}" in
    swift) group=("${swift_packages[@]}") ;;
    vm) group=("${vm_packages[@]}") ;;
    *) echo "usage: Tests/setup.sh --check swift|vm" >&2; exit 2 ;;
  esac
  missing=$(missing_from "${group[@]}" | tr '\n' ' ')
  [ -z "$missing" ] && exit 0
  echo "${missing% }"
  exit 1
fi

wanted=("${swift_packages[@]}")
[ "${1:-}" = --no-vm ] || wanted+=("${vm_packages[@]}")
mapfile -t missing < <(missing_from "${wanted[@]}" | sort -u)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: every package the tests need is installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: missing packages: ${missing[*]}"
  echo "setup: install them with: sudo apt-get install --no-install-recommends ${missing[*]}"
  echo "setup: (or run Tests/setup.sh as root); until then the tests that need them are skipped"
  exit 0
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
  echo "setup: installed ${#missing[@]} package(s)"
else
  echo "setup: apt-get could not install ${missing[*]}; the tests that need them are skipped" >&2
fi
