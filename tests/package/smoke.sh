#!/bin/sh
# Runs inside a minimal bookworm root of the package's architecture (script/package ARCH --test; a
# foreign one entered with proot -q qemu-ARCH-static): installs the package with its dependencies,
# then runs the programs.
#   tests/package/smoke.sh DEB
set -eu
deb=${1:?deb}
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
ok() { echo "smoke: ok: $*"; }
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
apt="apt-get -o APT::Sandbox::User=root -y -qq"
$apt update >/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "apt-get update"; }
# The user comes from a sysusers.d file: the standalone systemd-sysusers satisfies that dependency in
# a minimal root without installing all of systemd (whose maintainer scripts proot cannot run).
$apt install --no-install-recommends systemd-standalone-sysusers >>/tmp/apt.log 2>&1 ||
  { cat /tmp/apt.log; fail "apt-get install systemd-standalone-sysusers"; }
$apt install --no-install-recommends "$deb" >>/tmp/apt.log 2>&1 || { cat /tmp/apt.log; fail "apt-get install $deb"; }
ok "installed $(dpkg-query -W -f='${Package} ${Version} ${Architecture}' plugbridge) on $(dpkg --print-architecture)"
getent passwd plugbridge >/dev/null || fail "no plugbridge user"

v=$(plugbridged --version) || fail "plugbridged --version"
case $v in "plugbridged "*) ok "plugbridged --version: $v" ;; *) fail "plugbridged --version said: $v" ;; esac

if plugbridged --check-config 2>/tmp/check.err; then fail "the shipped example configuration passes --check-config"; fi
grep -q 'gateway_id: still CHANGE-ME: fill in the gateway id' /tmp/check.err || fail "unclear refusal: $(cat /tmp/check.err)"
ok "the shipped example is refused:"
sed 's/^/    /' /tmp/check.err

# Filled in as a user would: the placeholders, a fresh key per example socket, the CA file.
key() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }
sed -e 's/CHANGE-ME/filled-in/' -e "s/000102030405060708090a0b0c0d0e0f/$(key)/" \
  -e "s/f0e1d2c3b4a5968778695a4b3c2d1e0f/$(key)/" /etc/plugbridge/plugbridge.yaml >/tmp/valid.yaml
echo "test CA" >/tmp/tuya-edge-ca.pem
out=$(plugbridged --check-config --config /tmp/valid.yaml) || fail "a valid configuration is refused"
ok "a valid configuration passes: $out"

plugbridge --help >/tmp/help.out 2>&1 || fail "plugbridge --help"
grep -q provision /tmp/help.out || fail "plugbridge --help lists no provision command"
ok "plugbridge --help ($(wc -l </tmp/help.out) lines)"
echo "smoke: all passed"
