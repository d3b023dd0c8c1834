#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Remakes this folder's captured outputs (the unit tests' inputs) from its rule files, with the
# real tools, in a throwaway network namespace (root): NAME.nft -> NAME.json (`nft -j list
# ruleset`); NAME.rules -> NAME.nft-save.txt (iptables-nft-restore, then iptables-nft-save -t
# nat; ip6tables for NAME6.rules), NAME.legacy-save.txt (the same through iptables-legacy) and
# NAME.xt.json (what nft shows of the iptables-nft rules); and native_nat_table.nft-save.txt,
# what iptables-nft-save says of a native nft table named like its own (ip nat).
set -euo pipefail
cd "$(dirname "$0")"
netns=pwnr-capture-$$
ip netns add "$netns"
trap 'ip netns del "$netns"' EXIT
in_netns() { ip netns exec "$netns" "$@"; }
for rules in *.nft; do
  in_netns nft flush ruleset
  in_netns nft -f "$rules"
  in_netns nft -j list ruleset >"${rules%.nft}.json"
done
for rules in *.rules; do
  name=${rules%.rules}
  tool=iptables
  [[ $name == *6 ]] && tool=ip6tables
  for variant in nft legacy; do
    in_netns nft flush ruleset
    in_netns "$tool-$variant-restore" <"$rules"
    in_netns "$tool-$variant-save" -t nat >"$name.$variant-save.txt"
    [ "$variant" = nft ] && in_netns nft -j list ruleset >"$name.xt.json"
    in_netns "$tool-legacy-restore" <<<$'*nat\nCOMMIT' # empties the legacy nat table
  done
done
in_netns nft flush ruleset
in_netns nft -f snat_two_addresses.nft
in_netns iptables-nft-save -t nat >native_nat_table.nft-save.txt
