#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# libmnl's static archive, and prints its prefix (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig).
# Debian 12's libmnl-dev ships no libmnl.a and the registry this project reaches serves no
# source tarballs, so it is taken from Debian 13's libmnl-dev (1.0.5, which ships one):
# apt-get checks the .deb against trixie's signed Release. libmnl calls only plain libc
# (socket, bind, sendto, recvmsg): it links against this system's libc.a. Kept in
# PORTWATCH_CACHE (default ~/.cache/portwatch-package).
set -euo pipefail
cache=${PORTWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portwatch-package}
prefix=$cache/libmnl-static
if [ -f "$prefix/.complete" ]; then echo "$prefix"; exit 0; fi

apt=$cache/apt-trixie
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
    "http://deb.debian.org/debian trixie main" >"$apt/sources.list"
options=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=-
         -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
         -o Debug::NoLocking=1 -o APT::Sandbox::User=root -o APT::Architecture=amd64)
echo "static-mnl: fetching libmnl-dev from Debian 13 for its libmnl.a" >&2
apt-get -qq "${options[@]}" update
(cd "$work" && apt-get -qq "${options[@]}" download libmnl-dev:amd64 && dpkg-deb -x ./*.deb root)
archive=$(find "$work/root" -name libmnl.a | head -1)
if [ -z "$archive" ]; then
  echo "static-mnl: Debian 13's libmnl-dev holds no libmnl.a" >&2
  exit 1
fi
version=$(dpkg-deb -f "$work"/*.deb Version)
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
cp "$archive" "$prefix/lib/"
cp -r "$work/root/usr/include/libmnl" "$prefix/include/"
cat >"$prefix/lib/pkgconfig/libmnl.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: libmnl
Description: Minimalistic Netlink communication library (static, Debian 13's $version)
Version: ${version%%-*}
Libs: -L\${libdir} -lmnl
Cflags: -I\${includedir}
PC
touch "$prefix/.complete"
echo "$prefix"
