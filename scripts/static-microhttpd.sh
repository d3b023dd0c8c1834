#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds libmicrohttpd without HTTPS, static, from Debian's own source package of the version
# installed, and prints its prefix (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig). Debian's
# libmicrohttpd.a needs GnuTLS, which needs p11-kit, which ships no static archive; portwatch's
# /metrics is plain HTTP. Kept in PORTWATCH_CACHE (default ~/.cache/portwatch-package).
set -euo pipefail
cache=${PORTWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/portwatch-package}
deb_version=$(dpkg-query -W -f='${source:Version}' libmicrohttpd-dev)
prefix=$cache/microhttpd-$deb_version-nohttps
if [ -f "$prefix/.complete" ]; then echo "$prefix"; exit 0; fi

apt=$cache/apt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
    "http://deb.debian.org/debian $codename main" >"$apt/sources.list"
options=(-o "Dir::Etc::sourcelist=$apt/sources.list" -o Dir::Etc::sourceparts=-
         -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
         -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
echo "static-microhttpd: building libmicrohttpd $deb_version without HTTPS" >&2
apt-get -qq "${options[@]}" update
# --no-check: apt-get has checked each file's hash against the archive's signed Release.
(cd "$work" && apt-get -qq "${options[@]}" source --download-only "libmicrohttpd=$deb_version" \
    && dpkg-source --no-check -x ./*.dsc src) >/dev/null
if ! (cd "$work/src" \
    && ./configure --quiet --prefix="$prefix" --disable-https --disable-shared --enable-static \
        --with-pic --disable-doc --disable-examples --disable-curl --disable-nls \
    && make -s -j"$(nproc)" -C src/microhttpd install \
    && make -s -C src/include install && make -s install-pkgconfigDATA) >"$work/build.log" 2>&1; then
    tail -30 "$work/build.log" >&2
    echo "static-microhttpd: the build failed" >&2
    exit 1
fi
touch "$prefix/.complete"
echo "$prefix"
