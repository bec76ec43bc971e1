#!/usr/bin/env bash
# `cmake --install` into a staging root: the programs, the unit (with paths that follow the prefix
# the build was configured with), the docs and the example configuration, which the installed daemon
# refuses until its placeholders are filled in, and accepts then.
#   tests/install_smoke.sh BUILD_DIR WORK_DIR PREFIX
set -euo pipefail
build=${1:?build dir} work=${2:?work dir} prefix=${3:?install prefix}
rm -rf "$work" && mkdir -p "$work"
DESTDIR=$work cmake --install "$build" >"$work/install.log"
fail() { echo "install_smoke: $*" >&2; cat "$work/install.log" >&2; exit 1; }
root=$work$prefix
for f in sbin/plugbridged bin/plugbridge lib/systemd/system/plugbridged.service \
  share/doc/plugbridge/README.md share/doc/plugbridge/plugbridge.example.yaml \
  share/doc/plugbridge/docs/lan-protocol.md; do
  [[ -e $root/$f ]] || fail "missing $f"
done
unit=$root/lib/systemd/system/plugbridged.service
grep -qx "ExecStart=$prefix/sbin/plugbridged --config /etc/plugbridge/plugbridge.yaml" "$unit" ||
  fail "ExecStart does not follow the prefix: $(grep ExecStart "$unit")"
grep -qx "ExecStartPre=$prefix/sbin/plugbridged --check-config --config /etc/plugbridge/plugbridge.yaml" "$unit" ||
  fail "ExecStartPre does not follow the prefix: $(grep ExecStartPre "$unit")"
grep -qE '@[A-Z_]+@' "$unit" && fail "the unit has unconfigured variables: $(grep -E '@[A-Z_]+@' "$unit")"
example=$root/share/doc/plugbridge/plugbridge.example.yaml
if "$root/sbin/plugbridged" --check-config --config "$example" 2>"$work/check.err"; then
  fail "the installed daemon accepts the example configuration with its placeholders"
fi
grep -q 'gateway_id: still CHANGE-ME: fill in the gateway id' "$work/check.err" ||
  fail "the refusal does not say what to fill in: $(cat "$work/check.err")"
# Filled in as a user would: the placeholders, a fresh key per example socket, the CA file, and
# (this host has no /var/lib/plugbridge) a database path of its own.
key() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }
sed -e 's/CHANGE-ME/filled-in/' -e "s/000102030405060708090a0b0c0d0e0f/$(key)/" \
  -e "s/f0e1d2c3b4a5968778695a4b3c2d1e0f/$(key)/" -e "s|^database: .*|database: $work/pb.db|" \
  "$example" >"$work/filled.yaml"
echo "test CA" >"$work/tuya-edge-ca.pem"
"$root/sbin/plugbridged" --check-config --config "$work/filled.yaml" ||
  fail "the installed daemon rejects the example configuration once it is filled in"
"$root/bin/plugbridge" --help >/dev/null || fail "the installed CLI does not run"
rm -rf "$work"
echo "install_smoke: ok"
