#!/usr/bin/env bash
# The installed daemon under its hardened unit, with systemd as PID 1: a bookworm container booted
# with systemd-nspawn (sharing the host's network), the package installed in it, the unit started by
# systemd itself. On the host: the Tuya edge emulator (mosquitto, TLS) and plugsim sockets. Proves
# that the unit's restrictions leave the daemon working: it becomes READY (Type=notify), keeps the
# watchdog happy, takes the sockets' TLS-PSK sessions, commits their readings, reports to the broker,
# serves the CLI over the control socket, and stops cleanly; that the restrictions are in force; and
# that the maintainer scripts under systemd restart the service on upgrade and stop it on remove.
#   tests/package/hardening.sh SYSTEMD_ROOT DEB BIN_DIR
# SYSTEMD_ROOT: a bookworm root with systemd (copied, never changed); BIN_DIR: a host build's
# programs (plugsim, pb-tuya-emu).
set -euo pipefail
troot=${1:?root with systemd} deb=$(realpath "${2:?deb}") bin=$(realpath "${3:?bin dir}")
cd "$(dirname "$0")/../.."
w=$(mktemp -d /var/tmp/pb-hardening.XXXXXX)
r=$w/root
pids=()
nspawn=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ -n $nspawn ]]; then
    kill -TERM "$nspawn" 2>/dev/null || true  # nspawn shuts the container down
    for _ in $(seq 50); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$nspawn" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  [[ ${PB_KEEP:-0} == 1 ]] && { echo "kept $w"; return; }
  rm -rf "$w"
}
trap cleanup EXIT
leader=
fail() {
  echo "hardening: FAIL: $*" >&2
  if [[ -n $leader ]]; then
    echo "--- journalctl -u plugbridged" >&2
    nsenter -t "$leader" -a -- journalctl -u plugbridged --no-pager 2>&1 | tail -25 >&2 || true
  fi
  exit 1
}
ok() { echo "hardening: ok: $*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for FILE REGEX SECONDS WHAT
  local deadline=$((SECONDS + $3))
  until grep -qE "$2" "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "timed out waiting for $4 (see $1)"
    sleep 0.2
  done
}

mkdir -p "$r"
cp -a "$troot/." "$r/"
cp "$deb" "$r/tmp/plugbridge.deb"
cp /etc/resolv.conf "$r/etc/resolv.conf"
echo pb-hardening >"$r/etc/hostname"
# debootstrap writes no /etc/hosts (every installed system has one); the uplink's host is "localhost".
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
# Install before booting (apt in the stopped root), so the boot's systemd sees the unit.
chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  sh -c 'mount -t proc proc /proc; apt-get install -y -qq --no-install-recommends /tmp/plugbridge.deb sqlite3; r=$?; umount /proc; exit $r' \
  >"$w/apt.log" 2>&1 || { cat "$w/apt.log"; fail "apt-get install"; }

broker_port=$(free_port)
lan_port=$(free_port)
gw=hardening-gw vendor=hardening-vendor
mkdir -p "$w/sim"
{
  echo "gateway_id: $gw"
  echo "uplink:"
  echo "  host: localhost"
  echo "  port: $broker_port"
  echo "  ca_file: ca.crt"
  echo "  username: $vendor"
  echo "lan:"
  echo "  listen_address: 127.0.0.1"
  echo "  port: $lan_port"
  echo "heartbeat_s: 5"
  # One-second samples, committed twice a second: the checks below see them within seconds.
  echo "history: {raw_resolution_s: 1, commit_interval_ms: 500}"
  echo "sockets:"
  for i in 1 2 3; do
    echo "  - cid: hard-$i"
    echo "    product_id: pbsock1"
    echo "    secret: $(openssl rand -hex 16)"
  done
} >"$r/etc/plugbridge/plugbridge.yaml"
cp "$r/etc/plugbridge/plugbridge.yaml" "$w/sim/plugbridge.yaml"

mkfifo "$w/emu.in"
PB_BIN_DIR=$bin tools/tuya-edge-emu/run "$w/broker" --port "$broker_port" --gateway-id "$gw" \
  --username "$vendor" <"$w/emu.in" >"$w/emu.log" 2>&1 &
pids+=($!)
exec 3>"$w/emu.in"
wait_for "$w/emu.log" '"subscribed"' 30 "the emulator"
install -m 0640 "$w/broker/ca.crt" "$r/etc/plugbridge/ca.crt"
chroot "$r" chgrp plugbridge /etc/plugbridge/ca.crt

# Boot. --keep-unit/--register=no: no machined on this host; the host's network is shared.
systemd-nspawn --quiet --boot --register=no --keep-unit -D "$r" --machine=pb-hardening \
  >"$w/nspawn.log" 2>&1 </dev/null &
nspawn=$!
leader=
st=
for _ in $(seq 300); do
  # The container's PID 1: systemd-nspawn's child once it has become systemd.
  leader=$(pgrep -P "$nspawn" -x systemd | head -1 || true)
  if [[ -n $leader ]]; then
    st=$(nsenter -t "$leader" -a -- systemctl is-system-running 2>/dev/null || true)
    [[ $st == running || $st == degraded ]] && break
  fi
  sleep 0.2
done
[[ $st == running || $st == degraded ]] || { cat "$w/nspawn.log"; fail "systemd did not boot: '$st'"; }
in_ct() { nsenter -t "$leader" -a -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
ok "container booted with systemd $(in_ct systemctl --version | head -1 | cut -d' ' -f2) as PID 1 ($st)"

in_ct systemctl restart plugbridged
state=$(in_ct systemctl show plugbridged -p ActiveState -p SubState -p Type -p MainPID --value | tr '\n' ' ')
[[ $(in_ct systemctl is-active plugbridged) == active ]] || {
  in_ct journalctl -u plugbridged --no-pager | tail -30; fail "plugbridged not active: $state"; }
status=$(in_ct systemctl show plugbridged -p StatusText --value)
[[ $status == "listening for sockets on port $lan_port, 3 in the roster" ]] || fail "status text: $status"
ok "READY under the unit (Type=notify, active): \"$status\""

"$bin/plugsim" --config "$w/sim/plugbridge.yaml" --gateway "127.0.0.1:$lan_port" --state-dir "$w/sim/state" \
  --watts 60,450,1000 >"$w/plugsim.log" 2>"$w/plugsim.err" &
pids+=($!)
for i in 1 2 3; do
  wait_for "$w/plugsim.log" "\"cid\":\"hard-$i\",\"ev\":\"session_up\"" 30 "hard-$i"
done
wait_for "$w/emu.log" 'properties/report"' 30 "the first report to the broker"
ok "3 sockets connected over TLS-PSK, reports reach the broker"

# The CLI as a member of the plugbridge group (not root): control socket and database.
in_ct useradd --create-home --groups plugbridge pbuser
in_ct setpriv --reuid pbuser --regid pbuser --init-groups plugbridge relay hard-3 on >"$w/relay.out" 2>&1 ||
  { cat "$w/relay.out"; fail "plugbridge relay as a plugbridge group member"; }
ok "control socket: $(cat "$w/relay.out")"
n=0
for _ in $(seq 100); do
  n=$(in_ct setpriv --reuid pbuser --regid pbuser --init-groups plugbridge export --csv - | grep -c '^hard-' || true)
  ((n >= 3)) && break
  sleep 0.2
done
((n >= 3)) || fail "only $n samples committed"
ok "$n samples committed to /var/lib/plugbridge/plugbridge.db (read by the CLI of a group member)"

# The restrictions are really in force on the running daemon.
pid=$(in_ct systemctl show plugbridged -p MainPID --value)
st=$(in_ct cat "/proc/$pid/status")
grep -qP '^Seccomp:\t2' <<<"$st" || fail "no seccomp filter: $(grep Seccomp <<<"$st")"
grep -qP '^NoNewPrivs:\t1' <<<"$st" || fail "NoNewPrivs not set"
grep -qP '^CapBnd:\t0+$' <<<"$st" || fail "capabilities left: $(grep CapBnd <<<"$st")"
grep -qP '^CapEff:\t0+$' <<<"$st" || fail "effective capabilities: $(grep CapEff <<<"$st")"
# ProtectSystem=strict: in the daemon's mount namespace even root cannot write to /usr or /etc.
for d in /usr /etc; do
  if in_ct nsenter -t "$pid" -m -- touch "$d/pb-probe" 2>"$w/probe.err"; then fail "$d is writable for the daemon"; fi
  grep -q 'Read-only file system' "$w/probe.err" || fail "$d probe: $(cat "$w/probe.err")"
done
in_ct test ! -e /etc/pb-probe || fail "probe file appeared in /etc"
ok "in force on PID $pid: seccomp filter, NoNewPrivs, no capabilities, /usr and /etc read-only"

# The watchdog (WatchdogSec=30) keeps being pinged under the filter: no restart after 35 s.
sleep 35
[[ $(in_ct systemctl show plugbridged -p NRestarts --value) == 0 ]] || fail "restarted: $(in_ct journalctl -u plugbridged --no-pager | tail)"
[[ $(in_ct systemctl show plugbridged -p MainPID --value) == "$pid" ]] || fail "main PID changed"
n2=$(in_ct plugbridge export --csv - | grep -c '^hard-' || true)
((n2 > n)) || fail "no new samples after 35 s ($n2)"
ok "35 s later: same PID, no restart (watchdog fine), $n2 samples"

# systemctl reload: ExecReload= runs `plugbridge reload` inside the unit's sandbox and waits for the
# outcome. A fourth socket added to the roster is accepted; the three keep their sessions; same PID.
printf '  - cid: hard-4\n    product_id: pbsock1\n    secret: %s\n' "$(openssl rand -hex 16)" \
  >>"$r/etc/plugbridge/plugbridge.yaml"
in_ct systemctl reload plugbridged >"$w/reload.out" 2>&1 ||
  { cat "$w/reload.out"; in_ct journalctl -u plugbridged --no-pager | tail -20; fail "systemctl reload"; }
[[ $(in_ct systemctl show plugbridged -p MainPID --value) == "$pid" ]] || fail "the reload changed the main PID"
in_ct journalctl -u plugbridged --no-pager | grep -q 'reloaded /etc/plugbridge/plugbridge.yaml: 1 added (hard-4)' ||
  { in_ct journalctl -u plugbridged --no-pager | tail -20; fail "no reload line in the journal"; }
status=$(in_ct systemctl show plugbridged -p StatusText --value)
[[ $status == "listening for sockets on port $lan_port, 4 in the roster" ]] || fail "status after the reload: $status"
{
  echo "gateway_id: hardening-gw"
  echo "uplink:"
  echo "  enabled: false"
  sed -n '/^  - cid: hard-4$/,$p' "$r/etc/plugbridge/plugbridge.yaml" | sed '1i sockets:'
} >"$w/sim4.yaml"
"$bin/plugsim" --config "$w/sim4.yaml" --gateway "127.0.0.1:$lan_port" --state-dir "$w/sim4" --watts 100 \
  >"$w/plugsim4.log" 2>"$w/plugsim4.err" &
pids+=($!)
wait_for "$w/plugsim4.log" '"cid":"hard-4","ev":"session_up"' 30 "hard-4 after the reload"
for i in 1 2 3; do
  [[ $(grep -c "\"cid\":\"hard-$i\",\"ev\":\"session_up\"" "$w/plugsim.log") == 1 ]] ||
    fail "hard-$i reconnected during the reload"
done
ok "systemctl reload (ExecReload=plugbridge reload, sandboxed): hard-4 added and connected, hard-1..3 kept their sessions, same PID"

# Nothing the filter refused: a refused call would log EPERM errors.
if in_ct journalctl -u plugbridged --no-pager | grep -iE 'operation not permitted|EPERM|bad system call'; then
  fail "the daemon logged refused operations"
fi
in_ct systemctl stop plugbridged
res=$(in_ct systemctl show plugbridged -p Result -p ExecMainStatus --value | tr '\n' ' ')
[[ $res == "success 0 " ]] || fail "stop: $res"
ok "stopped cleanly (Result=success, exit 0); no 'operation not permitted' in its journal"
score=$(in_ct systemd-analyze security plugbridged 2>/dev/null | tail -1)
# The maintainer scripts with systemd running: an upgrade restarts the service (to a new PID, same
# configuration and database), remove stops it, purge deletes everything.
in_ct systemctl start plugbridged
pid=$(in_ct systemctl show plugbridged -p MainPID --value)
version=$(dpkg-deb -f "$deb" Version)
x=$(mktemp -d)
dpkg-deb -R "$deb" "$x/pkg"
sed -i "s/^Version: .*/Version: ${version}+next/" "$x/pkg/DEBIAN/control"
dpkg-deb --root-owner-group -b "$x/pkg" "$r/var/tmp/plugbridge_next.deb" >/dev/null
rm -rf "$x"
conf=$(md5sum <"$r/etc/plugbridge/plugbridge.yaml")
in_ct dpkg -i /var/tmp/plugbridge_next.deb >"$w/upgrade.log" 2>&1 || { cat "$w/upgrade.log"; fail "upgrade"; }
pid2=$(in_ct systemctl show plugbridged -p MainPID --value)
[[ $(in_ct systemctl is-active plugbridged) == active && $pid2 != "$pid" && $pid2 != 0 ]] ||
  fail "not restarted by the upgrade (PID $pid -> $pid2, $(in_ct systemctl is-active plugbridged))"
[[ $(md5sum <"$r/etc/plugbridge/plugbridge.yaml") == "$conf" ]] || fail "the upgrade changed the configuration"
n3=$(in_ct plugbridge export --csv - | grep -c '^hard-' || true)
((n3 >= n2)) || fail "samples lost in the upgrade ($n3 < $n2)"
ok "upgrade to ${version}+next under systemd: restarted (PID $pid -> $pid2), configuration and $n3 samples kept"
in_ct dpkg -r plugbridge >"$w/remove.log" 2>&1 || { cat "$w/remove.log"; fail "remove"; }
[[ $(in_ct systemctl is-active plugbridged || true) != active ]] || fail "still running after remove"
in_ct test -s /var/lib/plugbridge/plugbridge.db || fail "remove deleted the database"
[[ $(md5sum <"$r/etc/plugbridge/plugbridge.yaml") == "$conf" ]] || fail "remove changed the configuration"
ok "remove under systemd: service stopped, configuration and database kept"
in_ct dpkg -P plugbridge >"$w/purge.log" 2>&1 || { cat "$w/purge.log"; fail "purge"; }
in_ct test ! -e /etc/plugbridge -a ! -e /var/lib/plugbridge || fail "purge left /etc/plugbridge or /var/lib/plugbridge"
in_ct getent passwd plugbridge >/dev/null && fail "purge left the user"
ok "purge under systemd: configuration, database and user gone"

echo "hardening: installed unit: $score"
echo "hardening: all passed"
