#!/usr/bin/env bash
# The package's life in a minimal bookworm chroot of the host's architecture (a throw-away copy of
# TARGET_ROOT): install, edit the configuration, fill the database, upgrade (the edited configuration
# and the database survive, the daemon opens the database again), remove (configuration and data
# kept), purge (configuration, data and the plugbridge user gone).
#   tests/package/lifecycle.sh TARGET_ROOT DEB
# The "previous version" is the same package with its version lowered to VERSION~prev: the upgrade
# runs the old package's prerm and the new one's postinst with the old version, as apt does. The
# database it leaves is at schema 1 (made from migrations/0001_initial.sql, as the first release left
# it), so the upgraded daemon has to bring it forward with its own migrations and keep the readings.
# No systemd runs in a chroot: the service is started by hand (as the unit would, as user plugbridge).
set -euo pipefail
troot=${1:?target root} deb=${2:?deb}
deb=$(realpath "$deb")
migrations=$(realpath "$(dirname "$0")/../../migrations")
w=$(mktemp -d /var/tmp/pb-lifecycle.XXXXXX)
mounts=()
cleanup() {
  for m in "${mounts[@]}"; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$w"
}
trap cleanup EXIT
fail() { echo "lifecycle: FAIL: $*" >&2; exit 1; }
ok() { echo "lifecycle: ok: $*"; }
in_root() {
  chroot "$w" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}

cp -a "$troot/." "$w/"
mount -t proc proc "$w/proc" && mounts+=("$w/proc")
mount --rbind /dev "$w/dev" && mounts+=("$w/dev")
cp /etc/resolv.conf "$w/etc/resolv.conf"
# Packages' maintainer scripts must not start services in here.
printf '#!/bin/sh\nexit 101\n' >"$w/usr/sbin/policy-rc.d" && chmod +x "$w/usr/sbin/policy-rc.d"

version=$(dpkg-deb -f "$deb" Version)
x=$(mktemp -d)
dpkg-deb -R "$deb" "$x/pkg"
sed -i "s/^Version: .*/Version: ${version}~prev/" "$x/pkg/DEBIAN/control"
dpkg-deb --root-owner-group -b "$x/pkg" "$w/tmp/plugbridge_prev.deb" >/dev/null
rm -rf "$x"
cp "$deb" "$w/tmp/plugbridge_new.deb"

# --- install (the previous version) ---
in_root apt-get -o APT::Sandbox::User=root install -y -qq --no-install-recommends /tmp/plugbridge_prev.deb sqlite3 \
  >"$w/tmp/apt.log" 2>&1 || { cat "$w/tmp/apt.log"; fail "apt-get install"; }
[[ $(in_root dpkg-query -W -f='${Version}' plugbridge) == "${version}~prev" ]] || fail "previous version not installed"
in_root getent passwd plugbridge >/dev/null || fail "no plugbridge user"
[[ $(in_root stat -c '%U:%G %a' /etc/plugbridge) == "root:plugbridge 750" ]] ||
  fail "/etc/plugbridge is $(in_root stat -c '%U:%G %a' /etc/plugbridge)"
[[ $(in_root stat -c '%U:%G %a' /etc/plugbridge/plugbridge.yaml) == "root:plugbridge 640" ]] ||
  fail "plugbridge.yaml is $(in_root stat -c '%U:%G %a' /etc/plugbridge/plugbridge.yaml)"
[[ $(in_root stat -c '%U:%G %a' /var/lib/plugbridge) == "plugbridge:plugbridge 750" ]] ||
  fail "/var/lib/plugbridge is $(in_root stat -c '%U:%G %a' /var/lib/plugbridge)"
in_root test -f /lib/systemd/system/plugbridged.service || fail "unit not installed"
in_root test -f /usr/lib/sysusers.d/plugbridge.conf || fail "sysusers file not installed"
in_root test -L /etc/systemd/system/multi-user.target.wants/plugbridged.service || fail "unit not enabled"
ok "installed ${version}~prev: user, /etc/plugbridge root:plugbridge 0750, plugbridge.yaml 0640, unit enabled"

# The shipped configuration is refused, with what to fill in.
if in_root plugbridged --check-config 2>"$w/tmp/check.err"; then fail "the shipped example passes --check-config"; fi
grep -q 'gateway_id: still CHANGE-ME: fill in the gateway id' "$w/tmp/check.err" || fail "$(cat "$w/tmp/check.err")"
ok "the shipped example is refused: $(head -1 "$w/tmp/check.err")"

# --- edit the configuration, run the daemon as its unit would, fill the database ---
key() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }
in_root sed -i -e 's/^gateway_id: CHANGE-ME/gateway_id: lifecycle-gw/' -e 's/CHANGE-ME/pbsock1/' \
  -e "s/000102030405060708090a0b0c0d0e0f/$(key)/" -e "s/f0e1d2c3b4a5968778695a4b3c2d1e0f/$(key)/" \
  -e 's/^  enabled: true/  enabled: false/' -e 's/^  port: 6690/  port: 0/' /etc/plugbridge/plugbridge.yaml
in_root plugbridged --check-config >/dev/null || fail "the edited configuration is invalid"
edited=$(md5sum <"$w/etc/plugbridge/plugbridge.yaml")
run_daemon() { # starts plugbridged as plugbridge, waits for its database, stops it with SIGTERM
  mkdir -p "$w/run/plugbridge" && in_root chown plugbridge:plugbridge /run/plugbridge
  # exec all the way down: $! is the daemon itself (chroot, env and setpriv exec it).
  (exec chroot "$w" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin setpriv --reuid plugbridge \
    --regid plugbridge --init-groups --inh-caps=-all plugbridged --config /etc/plugbridge/plugbridge.yaml \
    >"$w/tmp/daemon.log" 2>&1) &
  local pid=$! i
  for ((i = 0; i < 100; i++)); do
    grep -q 'listening\|schema version' "$w/tmp/daemon.log" && in_root test -S /run/plugbridge/control.sock && break
    kill -0 $pid 2>/dev/null || { cat "$w/tmp/daemon.log"; fail "plugbridged exited"; }
    sleep 0.1
  done
  in_root plugbridge devices >"$w/tmp/devices.out" 2>&1 || { cat "$w/tmp/devices.out"; fail "plugbridge devices"; }
  kill -TERM $pid
  wait $pid || { cat "$w/tmp/daemon.log"; fail "plugbridged did not exit 0 on SIGTERM"; }
  grep -q 'shutting down' "$w/tmp/daemon.log" || fail "no orderly shutdown: $(tail -3 "$w/tmp/daemon.log")"
}
run_daemon
in_root test -f /var/lib/plugbridge/plugbridge.db || fail "no database after the first start"
latest=$(in_root sqlite3 /var/lib/plugbridge/plugbridge.db 'PRAGMA user_version')
ok "edited configuration runs; the daemon made its database at schema $latest"
# The database as the first schema left it, with 3 readings a minute apart, in place of the new one.
rm -f "$w"/var/lib/plugbridge/plugbridge.db*
now=$(($(date +%s) * 1000))
{
  echo "BEGIN;"
  cat "$migrations/0001_initial.sql"
  echo "PRAGMA user_version = 1;"
  for i in 1 2 3; do
    echo "INSERT INTO readings VALUES ('kitchen-kettle', 1, $i, $((now - 300000 + i * 60000)), 8, 230000, 100000, 23000, 23000, 10000, $((i * 10)), 0);"
  done
  echo "COMMIT;"
} | in_root setpriv --reuid plugbridge --regid plugbridge --init-groups sqlite3 /var/lib/plugbridge/plugbridge.db
[[ $(in_root sqlite3 /var/lib/plugbridge/plugbridge.db 'PRAGMA user_version; SELECT count(*) FROM readings') == $'1\n3' ]] ||
  fail "could not make the schema-1 database"
((latest > 1)) || fail "schema $latest: no migration to test"
rows() { in_root plugbridge export --csv - 2>/dev/null | grep -c '^kitchen-kettle' || true; }
ok "database replaced by a schema-1 one with 3 readings"

# --- upgrade ---
in_root dpkg -i /tmp/plugbridge_new.deb >"$w/tmp/upgrade.log" 2>&1 || { cat "$w/tmp/upgrade.log"; fail "upgrade"; }
[[ $(in_root dpkg-query -W -f='${Version}' plugbridge) == "$version" ]] || fail "not upgraded"
[[ $(md5sum <"$w/etc/plugbridge/plugbridge.yaml") == "$edited" ]] || fail "the edited configuration changed"
ls "$w"/etc/plugbridge/*.dpkg-* 2>/dev/null && fail "dpkg left conffile copies"
[[ $(in_root stat -c '%U:%G %a' /etc/plugbridge/plugbridge.yaml) == "root:plugbridge 640" ]] ||
  fail "plugbridge.yaml is $(in_root stat -c '%U:%G %a' /etc/plugbridge/plugbridge.yaml) after the upgrade"
run_daemon
[[ $(in_root sqlite3 /var/lib/plugbridge/plugbridge.db 'PRAGMA user_version') == "$latest" ]] ||
  fail "database not migrated to schema $latest: $(grep -i 'migration\|schema' "$w/tmp/daemon.log")"
applied=$(grep -c 'applied migration' "$w/tmp/daemon.log" || true)
((applied == latest - 1)) || fail "$applied migrations applied, expected $((latest - 1))"
[[ $(rows) == 3 ]] || fail "readings lost in the upgrade (3 expected as one-minute samples, $(rows) exported)"
ok "upgraded to $version: edited configuration kept; database migrated 1 -> $latest by the daemon ($applied migrations), 3 readings kept as samples and exported"

# --- remove ---
in_root dpkg -r plugbridge >"$w/tmp/remove.log" 2>&1 || { cat "$w/tmp/remove.log"; fail "remove"; }
in_root test ! -e /usr/sbin/plugbridged || fail "plugbridged still there after remove"
[[ $(md5sum <"$w/etc/plugbridge/plugbridge.yaml") == "$edited" ]] || fail "configuration not kept by remove"
in_root test -s /var/lib/plugbridge/plugbridge.db || fail "database not kept by remove"
in_root getent passwd plugbridge >/dev/null || fail "user removed by remove"
ok "removed: programs gone; configuration, database and user kept"

# --- purge ---
in_root dpkg -P plugbridge >"$w/tmp/purge.log" 2>&1 || { cat "$w/tmp/purge.log"; fail "purge"; }
in_root test ! -e /etc/plugbridge || fail "/etc/plugbridge still there after purge"
in_root test ! -e /var/lib/plugbridge || fail "/var/lib/plugbridge still there after purge"
in_root getent passwd plugbridge >/dev/null && fail "user plugbridge still there after purge"
in_root getent group plugbridge >/dev/null && fail "group plugbridge still there after purge"
[[ -z $(in_root dpkg-query -W -f='${Status}' plugbridge 2>/dev/null | grep -v not-installed) ]] ||
  fail "package still known to dpkg: $(in_root dpkg-query -W -f='${Status}' plugbridge)"
ok "purged: configuration, database, user and group gone"
echo "lifecycle: all passed"
