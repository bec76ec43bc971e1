#!/usr/bin/env bash
# Runs the README's demo (script/demo) on the programs of this build and checks what it shows: the
# README's first command must keep working.
#   tests/demo_smoke.sh BIN_DIR WORK_DIR
set -euo pipefail
bin=${1:?bin dir} work=${2:?work dir}
rm -rf "$work" && mkdir -p "$work"
out=$work/demo.out
if ! TMPDIR=$work "$(dirname "$0")/../script/demo" --seconds 1 --bin "$bin" >"$out" 2>&1; then
  cat "$out"
  echo "demo_smoke: script/demo failed" >&2
  exit 1
fi
cat "$out"
check() {  # check REGEX WHAT
  grep -qE "$1" "$out" || { echo "demo_smoke: missing $2" >&2; exit 1; }
}
[[ $(grep -c 'relay on (confirmed by the socket)' "$out") == 5 ]] || { echo "demo_smoke: not all 5 relays confirmed" >&2; exit 1; }
check '"code": 0, "msg": "success".*"request_id": "demo-cmd-1"' "the emulator command's success response"
check '^demo-socket-4 +Kettle +online +off +0\.0 ' "the kettle off at 0 W in 'plugbridge devices'"
check '^demo-socket-5 +Heater +online +on +1000\.0 ' "the heater on at 1000 W in 'plugbridge devices'"
check '^TOTAL +[0-9]+\.[0-9]+ k?Wh' "the energy total"
check '[0-9]+ +properties/report$' "properties/report counts"
check '5 +devices/sync$' "one devices/sync per socket"
# The daemon is stopped first and quickly: no "shutdown took too long" (which meant the broker had
# gone before the daemon could report its sockets offline).
check '^plugbridged stopped in [0-2]\.[0-9] s$' "the daemon stopped first, within 3 s"
log=$(echo "$work"/plugbridge-demo.*/plugbridged.log)
grep -q 'shutdown took too long' "$log" && { echo "demo_smoke: the daemon's shutdown stalled" >&2; exit 1; }
grep -q 'stopped' "$log" || { echo "demo_smoke: the daemon did not stop cleanly" >&2; exit 1; }
rm -rf "$work"
