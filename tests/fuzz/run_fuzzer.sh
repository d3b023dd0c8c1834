#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# run_fuzzer.sh FUZZER SEEDS SECONDS: runs one harness from its checked-in seeds for SECONDS.
# What it finds goes to a scratch corpus, never into the seeds; a crash leaves its input
# (crash-*) in the scratch directory, which is named on failure.
set -euo pipefail
fuzzer=$(realpath "$1") seeds=$(realpath "$2") seconds=$3
scratch=$(mktemp -d "${TMPDIR:-/tmp}/portwatch-fuzz.XXXXXX")
if (cd "$scratch" && "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=4096 -print_final_stats=1 "$scratch" "$seeds"); then
  rm -rf "$scratch"
else
  echo "$(basename "$fuzzer") failed; its corpus and crash input are in $scratch" >&2
  exit 1
fi
