#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages portwatch needs to build, test and run, if any
# is missing. Idempotent; apt runs only when something is missing.
# --build-only: just what building the portwatch binary needs (deploy/container).
set -euo pipefail

packages=(
  cmake g++ make pkg-config          # C++ build
  clang llvm                         # BPF programs (clang 14 on Debian 12)
  libbpf-dev bpftool libelf-dev zlib1g-dev
  libcli11-dev nlohmann-json3-dev    # command line, JSON
  libabsl-dev                        # the model's compact hash maps and B-trees
  libmicrohttpd-dev                  # the Prometheus endpoint
  libncurses-dev                     # portwatch top
  libcap-dev                         # which capabilities the agent has
  libmnl-dev                         # the NAT's conntrack table (ctnetlink)
)
[ "${1:-}" = --build-only ] || packages+=(
  libgtest-dev libgmock-dev          # tests
  libcpp-httplib-dev                 # tests: an HTTP client
  liburing-dev                       # tests of io_uring's socket ops
  libbenchmark-dev                   # benchmarks
  libclang-rt-14-dev                 # fuzz harnesses: libFuzzer and the sanitizers
  prometheus tmux                    # tests: promtool and a real scrape; portwatch top
  systemd rsyslog logrotate strace python3-yaml  # tests of deploy/
  python3 iproute2 procps            # benchmark script, debugging
  qemu-system-x86 busybox-static cpio xz-utils  # scripts/vmtest.py: the kernel matrix
  dpkg-dev debhelper fakeroot lintian file      # scripts/package.sh: the .deb, and its checks
  podman buildah runc uidmap                    # the OCI image, and running it in the tests
  debootstrap                                   # tests: the .deb in a clean Debian
  nftables conntrack iptables                   # tests: real NAT rules (nft, iptables-nft and -legacy), conntrack's own view
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
