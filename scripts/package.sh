#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the release artifacts into dist/ (root; installs what is missing, as the other
# scripts do):
#   portwatch                               one static x86_64 executable, stripped
#   portwatch-VERSION-linux-x86_64.tar.gz   it, the man page, completions, systemd unit,
#                                           logrotate rule, README and licences
#   portwatch_VERSION_amd64.deb             Debian's tooling (dpkg-buildpackage, debhelper)
#   portwatch-VERSION-oci.tar               an OCI image archive of deploy/container/Dockerfile
#   SHA256SUMS
# STATIC_BUILD_DIR (default build-static) is the static build's CMake tree (scripts/build.sh
# with PORTWATCH_STATIC=1; scripts/test.sh builds and tests in one).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
bash scripts/install-deps.sh

version=$(sed -n 's/^project(portwatch VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
[ -n "$version" ] || { echo "package: no VERSION in CMakeLists.txt's project()" >&2; exit 1; }
build=$(realpath -m "${STATIC_BUILD_DIR:-build-static}")
dist=$repo/dist
# Reproducible archives: every timestamp is the last commit's.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
started=$(date +%s)
say() { echo "package: $*" >&2; }

# The static build: the tree scripts/test.sh built (BUILD_DIR with PORTWATCH_STATIC=1) is
# reused as it is; otherwise a tree of its own, without the tests.
build_static_binary() {
    if [ ! -f "$build/CMakeCache.txt" ]; then
        say "configuring a static build in $build"
        PORTWATCH_STATIC=1 PORTWATCH_TESTS=OFF BUILD_DIR=$build bash scripts/build.sh --configure-only
    elif ! grep -q '^PORTWATCH_STATIC:BOOL=ON' "$build/CMakeCache.txt"; then
        say "$build is not a static build (PORTWATCH_STATIC=1 scripts/build.sh makes one)"; exit 1
    fi
    say "building the static executable in $build"
    cmake --build "$build" -j"$(nproc)" --target portwatch portwatch_docs_files
    strip -o "$dist/portwatch" "$build/portwatch"
    # A dynamic section or an interpreter would mean a library was linked dynamically.
    if readelf -d "$dist/portwatch" | grep -q NEEDED || readelf -l "$dist/portwatch" | grep -q INTERP; then
        say "dist/portwatch is not static:"; readelf -d "$dist/portwatch" >&2; exit 1
    fi
}

# The files every artifact shares, laid out as the tarball has them.
stage_release_files() {
    local into=$1
    mkdir -p "$into/completions" "$into/systemd" "$into/logrotate" "$into/LICENSES"
    install -m 0755 "$dist/portwatch" "$into/portwatch"
    install -m 0644 "$build/share/portwatch.8" "$into/portwatch.8"
    install -m 0644 "$build/share/portwatch.bash-completion" "$into/completions/portwatch.bash"
    install -m 0644 "$build/share/_portwatch" "$into/completions/_portwatch"
    install -m 0644 "$build/share/portwatch.fish" "$into/completions/portwatch.fish"
    install -m 0644 deploy/systemd/portwatch.service "$into/systemd/portwatch.service"
    install -m 0644 deploy/systemd/portwatch.logrotate "$into/logrotate/portwatch"
    install -m 0644 README.md LICENSE "$into/"
    install -m 0644 LICENSES/* "$into/LICENSES/"
    install -m 0644 deploy/debian/copyright "$into/COPYRIGHT"
}

deterministic_tar() {  # OUTPUT DIR NAME
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
        -C "$2" -cf - "$3" | gzip -9n >"$1"
}

make_tarball() {
    local name=portwatch-$version-linux-x86_64 work
    work=$(mktemp -d)
    stage_release_files "$work/$name"
    deterministic_tar "$dist/$name.tar.gz" "$work" "$name"
    rm -rf "$work"
}

# The source packages whose code the static executable embeds (Built-Using).
built_using() {
    local package sources=()
    for package in libbpf-dev libelf-dev zlib1g-dev libabsl-dev libncurses-dev libcap-dev \
        libmicrohttpd-dev libc6-dev libstdc++-12-dev; do
        sources+=("$(dpkg-query -W -f='${source:Package} (= ${source:Version})' "$package")")
    done
    (IFS=,; echo "${sources[*]}" | sed 's/,/, /g')
}

make_deb() {
    local work=$build/deb stage
    rm -rf "$work"
    stage=$work/portwatch-$version
    stage_release_files "$stage"
    cp -r deploy/debian "$stage/debian"
    # The deb installs to /usr/bin; the unit in deploy/ names /usr/local/bin (cmake --install).
    sed 's|/usr/local/bin/portwatch|/usr/bin/portwatch|' deploy/systemd/portwatch.service \
        >"$stage/debian/portwatch.service"
    cp deploy/systemd/portwatch.logrotate "$stage/debian/portwatch.logrotate"
    built_using >"$stage/built-using"
    cat >"$stage/debian/changelog" <<EOF
portwatch ($version) unstable; urgency=medium

  * Release $version ($(git describe --always --dirty --abbrev=12 --exclude='*' 2>/dev/null || echo unknown)).

 -- $(sed -n 's/^Maintainer: //p' deploy/debian/control)  $(date -R -u -d "@$SOURCE_DATE_EPOCH")
EOF
    say "building the .deb (dpkg-buildpackage)"
    (cd "$stage" && dpkg-buildpackage -b -us -uc --no-pre-clean >"$work/build.log" 2>&1) \
        || { cat "$work/build.log" >&2; exit 1; }
    cp "$work/portwatch_${version}_amd64.deb" "$dist/"
}

# A few terminfo entries for `portwatch top` in the image (kubectl exec -it sets TERM).
stage_terminfo() {
    local into=$1 term path
    for term in xterm xterm-256color screen screen-256color tmux tmux-256color linux vt100 \
        vt220 dumb; do
        path=$(find /usr/share/terminfo /lib/terminfo -name "$term" 2>/dev/null | head -1)
        [ -n "$path" ] || { say "no terminfo entry $term on this machine (ncurses-base)"; exit 1; }
        install -D -m 0644 "$path" "$into/${term:0:1}/$term"
    done
}

make_image() {
    local context=$build/image tag=localhost/portwatch:$version
    rm -rf "$context"
    mkdir -p "$context"
    install -m 0755 "$dist/portwatch" "$context/portwatch"
    stage_terminfo "$context/terminfo"
    say "building the image $tag (podman, no base image)"
    podman build --quiet --format oci --timestamp "$SOURCE_DATE_EPOCH" \
        -f deploy/container/Dockerfile -t "$tag" "$context" >/dev/null
    rm -f "$dist/portwatch-$version-oci.tar"
    podman save --quiet --format oci-archive -o "$dist/portwatch-$version-oci.tar" "$tag"
}

rm -rf "$dist"
mkdir -p "$dist"
build_static_binary
make_tarball
make_deb
make_image
(cd "$dist" && sha256sum portwatch ./*.tar.gz ./*.deb ./*.tar | sed 's| \./| |' >SHA256SUMS)
say "dist/ written in $(( $(date +%s) - started )) s:"
(cd "$dist" && ls -l | tail -n +2 >&2)
