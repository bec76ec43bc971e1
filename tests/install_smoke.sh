#!/usr/bin/env bash
# `cmake --install` into a staging root: the programs, the unit (with paths that follow the prefix),
# the docs and an example configuration that the installed daemon accepts.
#   tests/install_smoke.sh BUILD_DIR WORK_DIR
set -euo pipefail
build=${1:?build dir} work=${2:?work dir}
rm -rf "$work" && mkdir -p "$work"
DESTDIR=$work cmake --install "$build" --prefix /opt/pb >"$work/install.log"
fail() { echo "install_smoke: $*" >&2; cat "$work/install.log" >&2; exit 1; }
for f in sbin/plugbridged bin/plugbridge lib/systemd/system/plugbridged.service \
  share/doc/plugbridge/README.md share/doc/plugbridge/plugbridge.example.yaml \
  share/doc/plugbridge/docs/lan-protocol.md; do
  [[ -e $work/opt/pb/$f ]] || fail "missing $f"
done
unit=$work/opt/pb/lib/systemd/system/plugbridged.service
grep -qx 'ExecStart=/opt/pb/sbin/plugbridged --config /etc/plugbridge/plugbridge.yaml' "$unit" ||
  fail "ExecStart does not follow the prefix: $(grep ExecStart "$unit")"
grep -q '/usr/local' "$unit" && fail "the unit still names /usr/local"
"$work/opt/pb/sbin/plugbridged" --check-config --config "$work/opt/pb/share/doc/plugbridge/plugbridge.example.yaml" ||
  fail "the installed daemon rejects the installed example configuration"
"$work/opt/pb/bin/plugbridge" --help >/dev/null || fail "the installed CLI does not run"
rm -rf "$work"
echo "install_smoke: ok"
