#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End to end: the monitor writes JSON lines to a file (--output) as
# deploy/systemd/portwatch.service has it do, rsyslog with deploy/logging/rsyslog-portwatch.conf
# ships them to a TCP collector on loopback, and logrotate with
# deploy/systemd/portwatch.logrotate rotates the file in between (SIGHUP for the unit's
# reload). Every line must arrive whole, as JSON, with "host" added: the events of a socket
# bound in the test's netns (checked against getsockname()), a 100 KB line, and every one of
# 300 allocations made while the file is rotated.
# Usage: log_shipping.sh PORTWATCH_BINARY. Exit 77 = skipped (not root, outside CI).
set -euo pipefail
portwatch=$1
here=$(cd "$(dirname "$0")/../.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "log_shipping: needs root (BPF, network namespaces)" >&2
  [ "${CI:-}" = true ] && exit 1 || exit 77
fi
for tool in rsyslogd logrotate /usr/bin/python3; do
  command -v "$tool" >/dev/null || { echo "log_shipping: $tool missing (install-deps.sh)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/portwatch-logship.XXXXXX)
netns=portwatch-logship-$$
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$netns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "log_shipping: FAIL: $*" >&2; exit 1; }
# Waits up to $2 seconds for the python expression $1 (over `lines`, the collected JSON
# objects) to hold.
wait_for() {
  local deadline=$((SECONDS + $2))
  until /usr/bin/python3 - "$work/collected" "$1" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
  do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
}

# Binds $1 UDP ports one after another in the test's netns, closing each; prints them.
bind_udp_ports() {
  ip netns exec "$netns" /usr/bin/python3 -c '
import socket, sys, time
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1]); s.close(); time.sleep(0.003)' "$1"
}

ip netns add "$netns"
ip -n "$netns" link set lo up
inode=$(stat -L -c %i "/run/netns/$netns")

# The collector: a TCP server on loopback that appends what it receives to a file.
: > "$work/collected"
/usr/bin/python3 - "$work/collected" "$work/collector.port" <<'PY' &
import socket, sys
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen()
open(sys.argv[2], "w").write(str(server.getsockname()[1]))
out = open(sys.argv[1], "ab", buffering=0)
while True:
    connection, _ = server.accept()
    while data := connection.recv(65536):
        out.write(data)
PY
pids+=($!)
for _ in $(seq 50); do [ -s "$work/collector.port" ] && break; sleep 0.1; done
port=$(cat "$work/collector.port")

# The monitor, writing to its file as the unit has it do.
"$portwatch" monitor --json --netns "$inode" --stats-interval 0 --report-interval 0 \
  --output "$work/events.json" 2> "$work/monitor.err" &
monitor=$!
pids+=("$monitor")
for _ in $(seq 100); do grep -q '"type":"ready"' "$work/events.json" 2>/dev/null && break; sleep 0.1; done
grep -q '"type":"ready"' "$work/events.json" || fail "no ready line: $(cat "$work/monitor.err")"

# rsyslog with the shipped drop-in, pointed at this file and this collector.
sed -e "s#/var/log/portwatch/events.json#$work/events.json#" \
    -e "s#target=\"logs.example.internal\" port=\"5170\"#target=\"127.0.0.1\" port=\"$port\"#" \
    "$here/deploy/logging/rsyslog-portwatch.conf" > "$work/30-portwatch.conf"
grep -q "port=\"$port\"" "$work/30-portwatch.conf" || fail "the drop-in's target line changed"
mkdir "$work/spool"
cat > "$work/rsyslog.conf" <<CONF
global(workDirectory="$work/spool")
include(file="$work/30-portwatch.conf")
CONF
rsyslogd -N1 -f "$work/rsyslog.conf" 2>&1 | grep -vi "version\|End of config" && fail "config invalid"
rsyslogd -n -f "$work/rsyslog.conf" -i "$work/rsyslog.pid" 2> "$work/rsyslog.err" &
pids+=($!)

bound=$(bind_udp_ports 1)
wait_for "any(l.get('type') == 'release' and l.get('local_port') == $bound for l in lines)" 20 ||
  fail "the events of port $bound did not arrive: $(head -c 2000 "$work/collected")"
wait_for "all('host' in l and 'ts' in l for l in lines)" 1 || fail "a line without host or ts"
wait_for "any(l.get('type') == 'allocate' and l.get('local_port') == $bound and l.get('how') == 'bind_ephemeral' for l in lines)" 1 ||
  fail "no bind_ephemeral allocation of port $bound"

# A 100 KB line (a report of a busy host is one line) arrives whole.
/usr/bin/python3 -c '
import json
print(json.dumps({"type": "report", "ts": "2026-01-01T00:00:00.000000Z", "padding": "x" * 100000}))' \
  >> "$work/events.json"
wait_for "any(len(l.get('padding', '')) == 100000 for l in lines)" 20 || fail "the 100 KB line was cut"

# Rotation by the shipped rule (its reload is SIGHUP) while 300 ports are bound one after
# another: every one of their allocations arrives, from the old file or the new one.
sed -e "s#/var/log/portwatch/events.json#$work/events.json#" \
    -e "s#systemctl reload portwatch.service#kill -HUP $monitor#" \
  "$here/deploy/systemd/portwatch.logrotate" > "$work/logrotate.conf"
grep -q "kill -HUP $monitor" "$work/logrotate.conf" || fail "the rule's reload line changed"
bind_udp_ports 300 > "$work/burst.ports" &
burst=$!
sleep 0.3
logrotate -f -s "$work/logrotate.state" "$work/logrotate.conf"
wait $burst
[ -s "$work/events.json.1" ] || fail "logrotate moved no file away"
wait_for "{l['local_port'] for l in lines if l.get('type') == 'allocate'} >= set(map(int, open('$work/burst.ports').read().split()))" 20 ||
  fail "allocations made during the rotation are missing"
grep -q '"type":"allocate"' "$work/events.json" || fail "nothing was written to the new file"
echo "log_shipping: ok ($(wc -l < "$work/collected") lines shipped)"
