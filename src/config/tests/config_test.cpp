#include "plugbridge/config/config.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <string>

#include "plugbridge/config/check.hpp"
#include "support/testsupport.hpp"

namespace pb::config {
namespace {

namespace fs = std::filesystem;

// Minimal valid document; tests append to or replace parts of it.
const std::string kHead =
    "gateway_id: gw1\n"      // 1
    "uplink:\n"              // 2
    "  ca_file: ca.pem\n"    // 3
    "  username: vendor\n";  // 4

const std::string kSecretA = "5f3a9c1e7b2d48e06a91c3f7d2b8e415";
const std::string kSecretB = "c4e81b7f29a05d36e7f2a9c14b6d3085";

// Returns the ConfigError message, or fails the test if parsing succeeded.
std::string error_of(const std::string& yaml) {
  try {
    load_string(yaml, "t.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a ConfigError for:\n" << yaml;
  return {};
}

#define EXPECT_PREFIX(msg, prefix) EXPECT_EQ((msg).rfind(prefix, 0), 0u) << "message: " << (msg)

TEST(Config, MinimalUsesStructDefaults) {
  const Config c = load_string(kHead, "t.yaml");
  const Config defaults;
  EXPECT_EQ(c.gateway_id, "gw1");
  EXPECT_EQ(c.source_file, "t.yaml");
  EXPECT_EQ(c.uplink.username, "vendor");
  EXPECT_EQ(c.uplink.ca_file, "ca.pem");  // load_string has no directory to resolve against
  EXPECT_EQ(c.uplink.port, defaults.uplink.port);
  EXPECT_EQ(c.uplink.host, defaults.uplink.host);
  EXPECT_EQ(c.lan.port, defaults.lan.port);
  EXPECT_EQ(c.heartbeat_s, defaults.heartbeat_s);
  EXPECT_EQ(c.database, defaults.database);
  EXPECT_TRUE(c.sockets.empty());
}

TEST(Config, FullDocumentParsed) {
  const Config c = load_string(kHead +
                                   "  port: 8883\n"
                                   "  verify_hostname: false\n"
                                   "  keepalive_s: 45\n"
                                   "lan:\n"
                                   "  listen_address: 127.0.0.1\n"
                                   "  port: 0\n"
                                   "heartbeat_s: 60\n"
                                   "log_level: WARN\n"
                                   "sockets:\n"
                                   "  - cid: a_1\n"  // line 14
                                   "    product_id: p\n"
                                   "    secret: " +
                                   kSecretA +
                                   "\n"
                                   "    limits: {current_max_ma: 3000}\n"
                                   "  - cid: B-2\n"  // line 18
                                   "    product_id: p\n"
                                   "    secret: " +
                                   kSecretB + "\n",
                               "t.yaml");
  EXPECT_EQ(c.uplink.port, 8883);
  EXPECT_FALSE(c.uplink.verify_hostname);
  EXPECT_EQ(c.uplink.keepalive_s, 45);
  EXPECT_EQ(c.lan.port, 0);
  EXPECT_EQ(c.lan.listen_address, "127.0.0.1");
  EXPECT_EQ(c.heartbeat_s, 60);
  EXPECT_EQ(c.log_level, "warning");
  ASSERT_EQ(c.sockets.size(), 2u);
  EXPECT_EQ(c.sockets[0].line, 14);
  EXPECT_EQ(c.sockets[1].line, 18);
  ASSERT_EQ(c.sockets[0].secret.size(), 16u);
  EXPECT_EQ(c.sockets[0].secret[0], 0x5f);
  EXPECT_EQ(c.sockets[0].secret[15], 0x15);
  EXPECT_EQ(c.sockets[0].limits.current_max_ma, 3000u);
  EXPECT_FALSE(c.sockets[0].limits.power_max_w.has_value());
  ASSERT_NE(c.find_socket("B-2"), nullptr);
  EXPECT_EQ(c.find_socket("B-2")->secret[0], 0xc4);
  EXPECT_EQ(c.find_socket("nope"), nullptr);
}

TEST(Config, EmptySectionsMeanDefaults) {
  const Config c = load_string(kHead + "lan:\nsockets:\n", "t.yaml");
  EXPECT_EQ(c.lan.port, Config{}.lan.port);
  EXPECT_TRUE(c.sockets.empty());
  EXPECT_PREFIX(error_of("gateway_id: g\nuplink:\n"), "t.yaml:2: uplink.username: required");
}

TEST(Config, UplinkDisabledNeedsNoCredentials) {
  const Config c = load_string("gateway_id: g\nuplink: {enabled: false}\n", "t.yaml");
  EXPECT_FALSE(c.uplink.enabled);
}

TEST(Config, UnknownKeysAtEveryLevel) {
  std::string m = error_of(kHead + "hearbeat_s: 5\n");
  EXPECT_PREFIX(m, "t.yaml:5: hearbeat_s: unknown key");
  EXPECT_NE(m.find("heartbeat_s"), std::string::npos) << "lists valid keys: " << m;

  m = error_of(kHead + "  hots: x\n");
  EXPECT_PREFIX(m, "t.yaml:5: uplink.hots: unknown key");
  EXPECT_NE(m.find("uplink.host"), std::string::npos) << m;

  m = error_of(kHead + "lan:\n  prot: 1\n");
  EXPECT_PREFIX(m, "t.yaml:6: lan.prot: unknown key");

  m = error_of(kHead + "sockets:\n  - cid: a\n    product_id: p\n    secret: " + kSecretA +
               "\n    limits:\n      amps: 3\n");
  EXPECT_PREFIX(m, "t.yaml:10: sockets[0].limits.amps: unknown key");
  EXPECT_NE(m.find("current_max_ma"), std::string::npos) << m;

  m = error_of(kHead + "sockets:\n  - cid: a\n    colour: red\n");
  EXPECT_PREFIX(m, "t.yaml:7: sockets[0].colour: unknown key");
}

TEST(Config, MetricsOffWithoutTheSection) {
  const Config c = load_string(kHead, "t.yaml");
  EXPECT_FALSE(c.metrics.enabled);
  EXPECT_EQ(summary(c).find("metrics"), std::string::npos) << summary(c);
}

TEST(Config, MetricsSectionTurnsTheEndpointOn) {
  Config c = load_string(kHead + "metrics:\n", "t.yaml");
  EXPECT_TRUE(c.metrics.enabled);
  EXPECT_EQ(c.metrics.listen, Metrics{}.listen);
  c = load_string(kHead + "metrics: {listen: \"127.0.0.1:0\"}\n", "t.yaml");
  EXPECT_TRUE(c.metrics.enabled);
  EXPECT_EQ(c.metrics.listen, "127.0.0.1:0");
  EXPECT_NE(summary(c).find(", metrics on http://127.0.0.1:0/metrics"), std::string::npos) << summary(c);
  EXPECT_EQ(load_string(kHead + "metrics:\n  listen: \"[::1]:9101\"\n", "t.yaml").metrics.listen,
            "[::1]:9101");
}

TEST(Config, MetricsErrorsNameTheLine) {
  std::string m = error_of(kHead + "metrics:\n  port: 9101\n");
  EXPECT_PREFIX(m, "t.yaml:6: metrics.port: unknown key");
  EXPECT_NE(m.find("metrics.listen"), std::string::npos) << m;
  EXPECT_PREFIX(error_of(kHead + "metrics:\n  listen: 9101\n"),
                "t.yaml:6: metrics.listen: '9101' has no port");
  EXPECT_PREFIX(error_of(kHead + "metrics:\n  listen: \"127.0.0.1:http\"\n"),
                "t.yaml:6: metrics.listen: '127.0.0.1:http': port 'http' is not a number 0..65535");
  EXPECT_PREFIX(error_of(kHead + "metrics:\n  listen: \"127.0.0.1:70000\"\n"),
                "t.yaml:6: metrics.listen: '127.0.0.1:70000': port '70000'");
  EXPECT_PREFIX(error_of(kHead + "metrics:\n  listen: \"::1:9101\"\n"),
                "t.yaml:6: metrics.listen: '::1:9101': put an IPv6 address in brackets");
  EXPECT_PREFIX(error_of(kHead + "metrics:\n  listen: \":9101\"\n"),
                "t.yaml:6: metrics.listen: ':9101' has no address");
  EXPECT_PREFIX(error_of(kHead + "metrics:\n  listen: localhost:9101\n"),
                "t.yaml:6: metrics.listen: 'localhost:9101': 'localhost' is not an IP address");
  EXPECT_PREFIX(error_of(kHead + "metrics: [1]\n"), "t.yaml:5: metrics:");
}

TEST(Config, RepeatedKeyRejected) {
  EXPECT_PREFIX(error_of(kHead + "heartbeat_s: 5\nheartbeat_s: 6\n"),
                "t.yaml:6: heartbeat_s: key given twice");
}

TEST(Config, WrongTypes) {
  EXPECT_PREFIX(error_of(kHead + "heartbeat_s: fast\n"), "t.yaml:5: heartbeat_s: expected an integer");
  EXPECT_PREFIX(error_of(kHead + "heartbeat_s: 1.5\n"), "t.yaml:5: heartbeat_s: expected an integer");
  EXPECT_PREFIX(error_of(kHead + "  enabled: maybe\n"), "t.yaml:5: uplink.enabled: expected true or false");
  EXPECT_PREFIX(error_of(kHead + "lan: 5\n"), "t.yaml:5: lan: expected a mapping");
  EXPECT_PREFIX(error_of(kHead + "sockets: {a: 1}\n"), "t.yaml:5: sockets: expected a list");
  EXPECT_PREFIX(error_of(kHead + "database: [a, b]\n"), "t.yaml:5: database: expected a string");
  EXPECT_PREFIX(error_of(kHead + "sockets:\n  - just-a-string\n"),
                "t.yaml:6: sockets[0]: expected a mapping");
  EXPECT_PREFIX(error_of("- a\n- b\n"), "t.yaml:1: (top level): expected a mapping");
}

TEST(Config, OutOfRange) {
  EXPECT_PREFIX(error_of(kHead + "  port: 65536\n"), "t.yaml:5: uplink.port: 65536 out of range 1..65535");
  EXPECT_PREFIX(error_of(kHead + "lan:\n  port: -1\n"), "t.yaml:6: lan.port: -1 out of range 0..65535");
  EXPECT_PREFIX(error_of(kHead + "heartbeat_s: 0\n"), "t.yaml:5: heartbeat_s: 0 out of range 1..60");
  EXPECT_PREFIX(error_of(kHead + "heartbeat_s: 61\n"), "t.yaml:5: heartbeat_s: 61 out of range 1..60");
  EXPECT_PREFIX(error_of(kHead + "  keepalive_s: 4\n"),
                "t.yaml:5: uplink.keepalive_s: 4 out of range 5..3600");
  EXPECT_PREFIX(error_of(kHead + "lan: {max_handshakes: 0}\n"),
                "t.yaml:5: lan.max_handshakes: 0 out of range 1..100000");
  EXPECT_PREFIX(error_of(kHead + "lan: {max_handshakes_per_address: -1}\n"),
                "t.yaml:5: lan.max_handshakes_per_address: -1 out of range 0..100000");
  EXPECT_PREFIX(error_of(kHead + "lan: {new_connections_per_address_per_s: 100001}\n"),
                "t.yaml:5: lan.new_connections_per_address_per_s: 100001 out of range 0..100000");
  EXPECT_PREFIX(error_of(kHead + "lan: {keepalive_s: 3601}\n"),
                "t.yaml:5: lan.keepalive_s: 3601 out of range");
  EXPECT_PREFIX(error_of(kHead + "heartbeat_s: 99999999999999999999999\n"), "t.yaml:5: heartbeat_s: ");
  EXPECT_PREFIX(error_of(kHead + "sockets:\n  - cid: a\n    product_id: p\n    secret: " + kSecretA +
                         "\n    limits: {power_max_w: 5000}\n"),
                "t.yaml:9: sockets[0].limits.power_max_w: 5000 out of range 1..1100");
  // The socket firmware takes 100..20000 mA; below 100 it would answer InvalidValue at every session.
  EXPECT_PREFIX(error_of(kHead + "sockets:\n  - cid: a\n    product_id: p\n    secret: " + kSecretA +
                         "\n    limits: {current_max_ma: 99}\n"),
                "t.yaml:9: sockets[0].limits.current_max_ma: 99 out of range 100..5000");
}

TEST(Config, MissingRequiredKeys) {
  EXPECT_PREFIX(error_of("heartbeat_s: 5\n"), "t.yaml:1: gateway_id: required key missing");
  EXPECT_PREFIX(error_of(""), "t.yaml:1: gateway_id: required key missing");
  EXPECT_PREFIX(error_of("gateway_id: g\nuplink:\n  ca_file: c\n"),
                "t.yaml:3: uplink.username: required when uplink.enabled");
  EXPECT_PREFIX(error_of("gateway_id: g\nuplink:\n  username: u\n"),
                "t.yaml:3: uplink.ca_file: required when uplink.enabled");
  // No uplink section at all: enabled by default, so the credentials are still required.
  EXPECT_PREFIX(error_of("gateway_id: g\n"), "t.yaml:1: uplink.username: required");

  const std::string s = kHead + "sockets:\n  - name: x\n";  // entry on line 6
  EXPECT_PREFIX(error_of(s), "t.yaml:6: sockets[0].cid: required key missing");
  EXPECT_PREFIX(error_of(kHead + "sockets:\n  - cid: a\n    secret: " + kSecretA + "\n"),
                "t.yaml:6: sockets[0].product_id: required key missing");
  EXPECT_PREFIX(error_of(kHead + "sockets:\n  - cid: a\n    product_id: p\n"),
                "t.yaml:6: sockets[0].secret: required key missing");
}

TEST(Config, DuplicateCidAndSecret) {
  const std::string two = kHead +
                          "sockets:\n"
                          "  - cid: a\n"  // 6
                          "    product_id: p\n"
                          "    secret: " +
                          kSecretA +
                          "\n"
                          "  - cid: a\n"  // 9
                          "    product_id: p\n"
                          "    secret: " +
                          kSecretB + "\n";
  const std::string m = error_of(two);
  EXPECT_PREFIX(m, "t.yaml:9: sockets[1].cid: duplicate cid 'a'");
  EXPECT_NE(m.find("line 6"), std::string::npos) << m;

  // Same key bytes written in a different case are still the same key.
  std::string upper = kSecretA;
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  const std::string shared = kHead + "sockets:\n  - cid: a\n    product_id: p\n    secret: " + kSecretA +
                             "\n  - cid: b\n    product_id: p\n    secret: " + upper + "\n";
  EXPECT_PREFIX(error_of(shared), "t.yaml:11: sockets[1].secret: same secret as socket 'a'");
}

TEST(Config, CidCharsetAndLength) {
  auto with_cid = [](const std::string& cid) {
    return kHead + "sockets:\n  - cid: \"" + cid + "\"\n    product_id: p\n    secret: " + kSecretA + "\n";
  };
  EXPECT_PREFIX(error_of(with_cid("has space")), "t.yaml:6: sockets[0].cid: 'has space' must be 1..32");
  EXPECT_PREFIX(error_of(with_cid("dot.ted")), "t.yaml:6: sockets[0].cid:");
  EXPECT_PREFIX(error_of(with_cid("")), "t.yaml:6: sockets[0].cid:");
  EXPECT_PREFIX(error_of(with_cid(std::string(33, 'x'))), "t.yaml:6: sockets[0].cid:");
  EXPECT_NO_THROW(load_string(with_cid(std::string(32, 'x')), "t.yaml"));
  EXPECT_NO_THROW(load_string(with_cid("Az09_-"), "t.yaml"));
}

TEST(Config, BadHexSecret) {
  auto with_secret = [](const std::string& secret) {
    return kHead + "sockets:\n  - cid: a\n    product_id: p\n    secret: \"" + secret + "\"\n";
  };
  EXPECT_PREFIX(error_of(with_secret("00112233445566778899aabbccddeegg")),
                "t.yaml:8: sockets[0].secret: not hex");
  EXPECT_PREFIX(error_of(with_secret(kSecretA + "0")), "t.yaml:8: sockets[0].secret: hex string has an odd");
  EXPECT_PREFIX(error_of(with_secret(kSecretA.substr(0, 30))), "t.yaml:8: sockets[0].secret: too short");
  EXPECT_PREFIX(error_of(with_secret(std::string(130, 'a'))), "t.yaml:8: sockets[0].secret: too long");
}

// A key longer than kPskMax bytes could never be programmed into a socket.
TEST(Config, SecretLongerThanASocketHoldsRefused) {
  auto with_secret = [](const std::string& secret) {
    return kHead + "sockets:\n  - cid: a\n    product_id: p\n    secret: " + secret + "\n";
  };
  const std::string longest = kSecretA + kSecretB;  // 64 hex digits, 32 bytes
  const Config c = load_string(with_secret(longest), "t.yaml");
  ASSERT_EQ(c.sockets.size(), 1u);
  EXPECT_EQ(c.sockets[0].secret.size(), 32u);
  EXPECT_PREFIX(error_of(with_secret(longest + "5a")),
                "t.yaml:8: sockets[0].secret: too long: 66 hex digits, at most 64 (32 bytes");
  // In a flow-style document: 78 hex digits, 39 bytes.
  EXPECT_PREFIX(
      error_of("{gateway_id: \"gw\", uplink: {enabled: false}, sockets: [{cid: x, product_id: p, secret: "
               "0a3f4c7e1b2d4f6a8c0e2b66666666666666666000000000001692314756768421204d6f8a1c3e}]}\n"),
      "t.yaml:1: sockets[0].secret: too long: 78 hex digits");
}

TEST(Config, YamlSyntaxErrorHasLine) {
  const std::string m = error_of(kHead + "lan:\n  port: [1, 2\n");
  EXPECT_PREFIX(m, "t.yaml:");
  EXPECT_NE(m.find(": yaml: syntax error"), std::string::npos) << m;
  // The unterminated flow sequence is reported at or after the line where it starts.
  EXPECT_TRUE(m.rfind("t.yaml:6:", 0) == 0 || m.rfind("t.yaml:7:", 0) == 0) << m;

  EXPECT_PREFIX(error_of("gateway_id: g\n  bad indent: x\n"), "t.yaml:2: yaml: syntax error");
}

TEST(Config, BadLogLevel) {
  EXPECT_PREFIX(error_of(kHead + "log_level: loud\n"), "t.yaml:5: log_level: unknown level 'loud'");
}

using pb::test::TempDir;

TEST(Config, LoadFileResolvesRelativePaths) {
  TempDir dir;
  const fs::path file = dir.path() / "pb.yaml";
  std::ofstream(file)
      << "gateway_id: g\nuplink:\n  ca_file: certs/ca.pem\n  username: u\ndatabase: db/x.db\n";
  const Config c = load_file(file.string());
  EXPECT_EQ(c.source_file, file.string());
  EXPECT_EQ(c.uplink.ca_file, (dir.path() / "certs/ca.pem").string());
  EXPECT_EQ(c.database, (dir.path() / "db/x.db").string());

  std::ofstream(file) << "gateway_id: g\nuplink: {enabled: false}\ndatabase: /abs/x.db\n";
  EXPECT_EQ(load_file(file.string()).database, "/abs/x.db");
}

TEST(Config, ControlSocket) {
  const Config defaults;
  EXPECT_EQ(defaults.control_socket, "/run/plugbridge/control.sock");
  EXPECT_EQ(load_string(kHead, "t.yaml").control_socket, defaults.control_socket);
  EXPECT_EQ(load_string(kHead + "control_socket: /tmp/pb.sock\n", "t.yaml").control_socket, "/tmp/pb.sock");
  EXPECT_EQ(load_string(kHead + "control_socket: ''\n", "t.yaml").control_socket, "");  // disabled
  EXPECT_PREFIX(error_of(kHead + "control_socket: /" + std::string(120, 'x') + "\n"),
                "t.yaml:5: control_socket: path longer than 107 bytes");
  EXPECT_PREFIX(error_of(kHead + "control_socket: [a]\n"), "t.yaml:5: control_socket: expected a string");

  TempDir dir;
  const fs::path file = dir.path() / "pb.yaml";
  std::ofstream(file) << "gateway_id: g\nuplink: {enabled: false}\ncontrol_socket: run/c.sock\n";
  EXPECT_EQ(load_file(file.string()).control_socket, (dir.path() / "run/c.sock").string());
}

TEST(Config, LoadFileErrorsNameTheFile) {
  TempDir dir;
  const fs::path file = dir.path() / "bad.yaml";
  std::ofstream(file) << "gateway_id: g\nbogus: 1\n";
  try {
    load_file(file.string());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_PREFIX(std::string(e.what()), file.string() + ":2: bogus: unknown key");
  }
}

TEST(Config, MissingFileIsClearError) {
  TempDir dir;
  const std::string missing = (dir.path() / "nope.yaml").string();
  try {
    load_file(missing);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_PREFIX(m, missing + ": cannot open config file");
    EXPECT_NE(m.find("No such file"), std::string::npos) << m;
  }
  EXPECT_THROW(load_file(dir.path().string()), ConfigError);
}

TEST(Config, ExampleFileLoads) {
  const Config c = load_file(PB_EXAMPLE_CONFIG);
  const Config defaults;
  EXPECT_EQ(c.gateway_id, kPlaceholder);
  EXPECT_TRUE(c.uplink.enabled);
  EXPECT_EQ(c.uplink.port, defaults.uplink.port);
  EXPECT_EQ(c.lan.port, defaults.lan.port);
  EXPECT_EQ(c.heartbeat_s, defaults.heartbeat_s);
  EXPECT_EQ(c.database, defaults.database);
  EXPECT_EQ(c.control_socket, defaults.control_socket);
  EXPECT_TRUE(fs::path(c.uplink.ca_file).is_absolute());
  ASSERT_EQ(c.sockets.size(), 2u);
  EXPECT_EQ(c.sockets[0].cid, "kitchen-kettle");
  EXPECT_EQ(c.sockets[0].limits.current_max_ma, 4000u);
  EXPECT_EQ(c.sockets[0].energy_max_power_w, 3500u);
}

// The shipped example parses, but names every value still to fill in (plugbridged refuses it).
TEST(Config, ExamplePlaceholdersListed) {
  const Config c = load_file(PB_EXAMPLE_CONFIG);
  ASSERT_EQ(c.placeholders.size(), 6u);
  const std::string file = fs::path(PB_EXAMPLE_CONFIG).string();
  EXPECT_PREFIX(c.placeholders[0], file + ":");
  EXPECT_NE(c.placeholders[0].find(": gateway_id: still CHANGE-ME: fill in the gateway id"),
            std::string::npos)
      << c.placeholders[0];
  EXPECT_NE(c.placeholders[1].find(": uplink.username: still CHANGE-ME: fill in the Tuya vendor identifier"),
            std::string::npos)
      << c.placeholders[1];
  EXPECT_NE(c.placeholders[2].find(": sockets[0].product_id: still CHANGE-ME"), std::string::npos)
      << c.placeholders[2];
  // The example sockets' published keys: to be replaced like the placeholders.
  EXPECT_NE(c.placeholders[3].find(": sockets[0].secret: the example's published key, known to everyone: "
                                   "generate a real one with `openssl rand -hex 16`"),
            std::string::npos)
      << c.placeholders[3];
  EXPECT_NE(c.placeholders[4].find(": sockets[1].product_id: still CHANGE-ME"), std::string::npos)
      << c.placeholders[4];
  EXPECT_NE(c.placeholders[5].find(": sockets[1].secret: the example's published key"), std::string::npos)
      << c.placeholders[5];
}

TEST(Config, PlaceholdersOnlyWhereTheValueIsThePlaceholder) {
  EXPECT_TRUE(load_string(kHead, "t.yaml").placeholders.empty());
  const Config c = load_string(
      "gateway_id: CHANGE-ME\n"
      "uplink:\n"
      "  ca_file: ca.pem\n"
      "  username: CHANGE-ME\n"
      "sockets:\n"
      "  - cid: a\n"
      "    product_id: CHANGE-ME\n"
      "    secret: " +
          kSecretA +
          "\n"
          "  - cid: b\n"
          "    product_id: pbsock1\n"
          "    secret: " +
          kSecretB + "\n",
      "t.yaml");
  ASSERT_EQ(c.placeholders.size(), 3u);
  EXPECT_EQ(c.placeholders[0],
            "t.yaml:1: gateway_id: still CHANGE-ME: fill in the gateway id registered on the Tuya platform");
  EXPECT_PREFIX(c.placeholders[1], "t.yaml:4: uplink.username: still CHANGE-ME: fill in");
  EXPECT_PREFIX(c.placeholders[2], "t.yaml:7: sockets[0].product_id: still CHANGE-ME: fill in the socket's");
  // A disabled uplink needs no user name, so its placeholder does not hold the daemon back.
  EXPECT_TRUE(load_string("gateway_id: gw\nuplink: {enabled: false, username: CHANGE-ME}\n", "t.yaml")
                  .placeholders.empty());
  // Only the exact value: a gateway id that merely contains it is the user's choice.
  EXPECT_TRUE(load_string("gateway_id: CHANGE-ME-2\nuplink: {ca_file: ca.pem, username: v}\n", "t.yaml")
                  .placeholders.empty());
}

TEST(Config, EnergyKeys) {
  const Config d = load_string(kHead, "t.yaml");
  EXPECT_EQ(d.timezone, "");
  EXPECT_EQ(d.history.raw_days, 35);
  EXPECT_EQ(d.energy.max_power_w, 3500u);
  const Config c = load_string(kHead +
                                   "timezone: Asia/Kathmandu\n"
                                   "retention: {raw_days: 7}\n"
                                   "energy:\n"
                                   "  max_power_w: 2000\n",
                               "t.yaml");
  EXPECT_EQ(c.timezone, "Asia/Kathmandu");
  EXPECT_EQ(c.history.raw_days, 7);
  EXPECT_EQ(c.energy.max_power_w, 2000u);
  EXPECT_NO_THROW(load_string(kHead + "retention:\nenergy:\n", "t.yaml"));
}

TEST(Config, HistoryAndClockKeys) {
  const Config d = load_string(kHead, "t.yaml");
  EXPECT_EQ(d.history.max_db_mb, 2048);
  EXPECT_EQ(d.history.commit_interval_ms, 60'000);
  EXPECT_EQ(d.history.raw_resolution_s, 60);
  EXPECT_EQ(load_string(kHead + "history: {raw_resolution_s: 10}\n", "t.yaml").history.raw_resolution_s, 10);
  EXPECT_PREFIX(error_of(kHead + "history:\n  raw_resolution_s: 7\n"),
                "t.yaml:6: history.raw_resolution_s: must divide 900");
  EXPECT_PREFIX(error_of(kHead + "history:\n  raw_resolution_s: 0\n"),
                "t.yaml:6: history.raw_resolution_s: 0 out of range");
  EXPECT_EQ(load_string(kHead + "history: {commit_interval_ms: 20}\n", "t.yaml").history.commit_interval_ms,
            20);
  EXPECT_PREFIX(error_of(kHead + "history:\n  commit_interval_ms: 5\n"),
                "t.yaml:6: history.commit_interval_ms: 5 out of range");
  EXPECT_EQ(d.clock.max_wait_s, 120);
  const Config c =
      load_string(kHead + "history:\n  raw_days: 10\n  max_db_mb: 300\nclock: {max_wait_s: 0}\n", "t.yaml");
  EXPECT_EQ(c.history.raw_days, 10);
  EXPECT_EQ(c.history.max_db_mb, 300);
  EXPECT_EQ(c.clock.max_wait_s, 0);
  EXPECT_EQ(load_string(kHead + "history: {max_db_mb: 0}\n", "t.yaml").history.max_db_mb, 0);
  EXPECT_PREFIX(error_of(kHead + "history:\n  max_db_mb: -1\n"),
                "t.yaml:6: history.max_db_mb: -1 out of range");
  EXPECT_PREFIX(error_of(kHead + "history:\n  max_mb: 1\n"), "t.yaml:6: history.max_mb: unknown key");
  EXPECT_PREFIX(error_of(kHead + "history: {raw_days: 3}\nretention: {raw_days: 4}\n"),
                "t.yaml:6: retention: give raw_days in the history section only");
  EXPECT_PREFIX(error_of(kHead + "clock:\n  max_wait_s: 86401\n"),
                "t.yaml:6: clock.max_wait_s: 86401 out of range");
  EXPECT_PREFIX(error_of(kHead + "clock:\n  wait: 1\n"), "t.yaml:6: clock.wait: unknown key");
}

TEST(Config, PerSocketEnergyLimit) {
  const Config c = load_string(kHead +
                                   "energy: {max_power_w: 2000}\nsockets:\n"
                                   "  - cid: heater\n    product_id: p\n    secret: " +
                                   kSecretA +
                                   "\n    energy:\n      max_power_w: 9000\n"
                                   "  - cid: lamp\n    product_id: p\n    secret: " +
                                   kSecretB + "\n    energy:\n",
                               "t.yaml");
  ASSERT_EQ(c.sockets.size(), 2u);
  EXPECT_EQ(c.sockets[0].energy_max_power_w, 9000u);
  EXPECT_FALSE(c.sockets[1].energy_max_power_w.has_value());  // energy.max_power_w applies
  EXPECT_EQ(c.energy.max_power_w, 2000u);

  const std::string socket =
      kHead + "sockets:\n  - cid: a\n    product_id: p\n    secret: " + kSecretA + "\n";
  EXPECT_PREFIX(error_of(socket + "    energy: {max_power_w: 99}\n"),
                "t.yaml:9: sockets[0].energy.max_power_w: 99 out of range 100..100000");
  EXPECT_PREFIX(error_of(socket + "    energy:\n      max_w: 900\n"),
                "t.yaml:10: sockets[0].energy.max_w: unknown key; valid keys: sockets[0].energy.max_power_w");
  EXPECT_PREFIX(error_of(socket + "    energy: 900\n"), "t.yaml:9: sockets[0].energy: expected a mapping");
}

TEST(Config, EnergyKeysValidated) {
  EXPECT_PREFIX(error_of(kHead + "timezone: Europe/Atlantis\n"), "t.yaml:5: timezone: unknown time zone");
  EXPECT_PREFIX(error_of(kHead + "retention:\n  raw_days: 0\n"),
                "t.yaml:6: retention.raw_days: 0 out of range");
  EXPECT_PREFIX(error_of(kHead + "retention:\n  days: 3\n"), "t.yaml:6: retention.days: unknown key");
  EXPECT_PREFIX(error_of(kHead + "energy:\n  max_power_w: 10\n"),
                "t.yaml:6: energy.max_power_w: 10 out of range");
  EXPECT_PREFIX(error_of(kHead + "energy: 5\n"), "t.yaml:5: energy: expected a mapping");
}

TEST(Config, ReportDefaultsAndTheExampleFile) {
  const Report d;
  for (const Config& c : {load_string(kHead, "t.yaml"), load_string(kHead + "report:\n", "t.yaml"),
                          load_file(PB_EXAMPLE_CONFIG)}) {
    SCOPED_TRACE(c.source_file);  // the example writes every key with its default
    EXPECT_EQ(c.report.period_s, d.period_s);
    EXPECT_EQ(c.report.min_interval_s, d.min_interval_s);
    EXPECT_EQ(c.report.power_mw, d.power_mw);
    EXPECT_EQ(c.report.power_percent, d.power_percent);
    EXPECT_EQ(c.report.voltage_mv, d.voltage_mv);
    EXPECT_EQ(c.report.current_ua, d.current_ua);
    EXPECT_EQ(c.report.current_percent, d.current_percent);
    EXPECT_EQ(c.report.energy_mwh, d.energy_mwh);
    EXPECT_EQ(c.report.power_factor_e4, d.power_factor_e4);
  }
}

TEST(Config, ReportKeys) {
  const Config c = load_string(kHead +
                                   "report:\n"
                                   "  period_s: 60\n"
                                   "  min_interval_s: 0\n"
                                   "  power_w: 2.5\n"
                                   "  power_percent: 0\n"
                                   "  voltage_v: 1.25\n"
                                   "  current_ma: 15\n"
                                   "  current_percent: 5\n"
                                   "  energy_kwh: 0.005\n"
                                   "  power_factor: 0.02\n",
                               "t.yaml");
  EXPECT_EQ(c.report.period_s, 60);
  EXPECT_EQ(c.report.min_interval_s, 0);
  EXPECT_EQ(c.report.power_mw, 2500u);
  EXPECT_EQ(c.report.power_percent, 0u);
  EXPECT_EQ(c.report.voltage_mv, 1250u);
  EXPECT_EQ(c.report.current_ua, 15000u);
  EXPECT_EQ(c.report.current_percent, 5u);
  EXPECT_EQ(c.report.energy_mwh, 5000u);
  EXPECT_EQ(c.report.power_factor_e4, 200u);
  const Config w = load_string(kHead + "report: {power_w: +10, energy_kwh: 1, voltage_v: 0.001}\n", "t.yaml");
  EXPECT_EQ(w.report.power_mw, 10000u);
  EXPECT_EQ(w.report.energy_mwh, 1000000u);
  EXPECT_EQ(w.report.voltage_mv, 1u);
}

TEST(Config, ReportKeysValidated) {
  EXPECT_PREFIX(error_of(kHead + "report_period_s: 60\n"),
                "t.yaml:5: report_period_s: moved: write it as report.period_s");
  EXPECT_PREFIX(error_of(kHead + "report: 5\n"), "t.yaml:5: report: expected a mapping");
  const std::string r = kHead + "report:\n";
  std::string m = error_of(r + "  period: 60\n");
  EXPECT_PREFIX(m, "t.yaml:6: report.period: unknown key");
  EXPECT_NE(m.find("report.period_s"), std::string::npos) << m;
  EXPECT_PREFIX(error_of(r + "  period_s: 0\n"), "t.yaml:6: report.period_s: 0 out of range 1..86400");
  EXPECT_PREFIX(error_of(r + "  min_interval_s: 3601\n"),
                "t.yaml:6: report.min_interval_s: 3601 out of range");
  EXPECT_PREFIX(error_of(r + "  power_percent: 101\n"),
                "t.yaml:6: report.power_percent: 101 out of range 0..100");
  EXPECT_PREFIX(error_of(r + "  current_percent: 2.5\n"),
                "t.yaml:6: report.current_percent: expected an integer");
  for (const char* bad : {"-1", "5W", "1e3", ".5", "5.", "1.2.3", "''"})
    EXPECT_PREFIX(error_of(r + "  power_w: " + bad + "\n"),
                  "t.yaml:6: report.power_w: expected a non-negative number");
  EXPECT_PREFIX(error_of(r + "  power_w: 1.2345\n"),
                "t.yaml:6: report.power_w: '1.2345' has more than 3 decimals");
  EXPECT_PREFIX(error_of(r + "  power_w: 100000.001\n"),
                "t.yaml:6: report.power_w: '100000.001' out of range 0..100000");
  EXPECT_PREFIX(error_of(r + "  power_w: 99999999999999999999\n"),
                "t.yaml:6: report.power_w: '99999999999999999999' out of range");
  EXPECT_PREFIX(error_of(r + "  voltage_v: [1]\n"),
                "t.yaml:6: report.voltage_v: expected a number, got a list");
  EXPECT_PREFIX(error_of(r + "  energy_kwh: 1000.0001\n"),
                "t.yaml:6: report.energy_kwh: '1000.0001' out of range 0..1000");
  EXPECT_PREFIX(error_of(r + "  power_factor: 1.5\n"),
                "t.yaml:6: report.power_factor: '1.5' out of range 0..1");
  EXPECT_PREFIX(error_of(r + "  current_ma: 20\n  current_ma: 30\n"),
                "t.yaml:7: report.current_ma: key given twice");
}

TEST(Config, UplinkSessionReconnectAndOutboxKeys) {
  const Uplink d;
  EXPECT_FALSE(d.clean_session);
  for (const Config& c : {load_string(kHead, "t.yaml"), load_file(PB_EXAMPLE_CONFIG)}) {
    SCOPED_TRACE(c.source_file);  // the example writes every key with its default
    EXPECT_EQ(c.uplink.clean_session, d.clean_session);
    EXPECT_EQ(c.uplink.reconnect_max_s, d.reconnect_max_s);
    EXPECT_EQ(c.uplink.outbox_rate_per_s, d.outbox_rate_per_s);
  }
  const Config c =
      load_string(kHead + "  clean_session: true\n  reconnect_max_s: 2\n  outbox_rate_per_s: 20\n", "t.yaml");
  EXPECT_TRUE(c.uplink.clean_session);
  EXPECT_EQ(c.uplink.reconnect_max_s, 2);
  EXPECT_EQ(c.uplink.outbox_rate_per_s, 20);
  EXPECT_PREFIX(error_of(kHead + "  outbox_rate_per_s: 0\n"),
                "t.yaml:5: uplink.outbox_rate_per_s: 0 out of range 1..10000");
  EXPECT_PREFIX(error_of(kHead + "  reconnect_max_s: 3601\n"),
                "t.yaml:5: uplink.reconnect_max_s: 3601 out of range 1..3600");
  EXPECT_PREFIX(error_of(kHead + "  clean_session: sometimes\n"),
                "t.yaml:5: uplink.clean_session: expected true or false");
}

// A quote left open runs the value on over the next lines, swallowing the sockets after it.
TEST(Config, UnterminatedQuoteIsAnErrorAtItsLine) {
  const std::string yaml = kHead +
                           "sockets:\n"           // 5
                           "  - cid: a\n"         // 6
                           "    product_id: p\n"  // 7
                           "    secret: " +
                           kSecretA +
                           "\n"                    // 8
                           "    name: \"Kettle\n"  // 9
                           "  - cid: b\n"          // 10
                           "    product_id: p\n"   // 11
                           "    secret: " +
                           kSecretB + "\n";  // 12
  EXPECT_PREFIX(error_of(yaml),
                "t.yaml:9: sockets[0].name: the value runs on over several lines: the double quote "
                "opened here is not closed on this line");
  EXPECT_PREFIX(error_of(kHead + "sockets:\n  - cid: a\n    product_id: p\n    secret: " + kSecretA +
                         "\n    location: 'Hall\n      upstairs'\n"),
                "t.yaml:9: sockets[0].location: the value runs on over several lines: the single quote");
  // A plain value continued on the next line, and a block scalar.
  EXPECT_PREFIX(error_of("gateway_id: gw1\n  more\nuplink:\n  enabled: false\n"),
                "t.yaml:1: gateway_id: the value runs on over several lines");
  EXPECT_PREFIX(error_of("gateway_id: gw1\nuplink:\n  enabled: false\ndatabase: |\n  /a\n  /b\n"),
                "t.yaml:4: database: the value runs on over several lines");
  // Quotes closed on their line, escapes and '' inside, flow style: all fine.
  const Config c = load_string(kHead + "sockets:\n  - {cid: a, product_id: p, secret: " + kSecretA +
                                   ", name: \"Say \\\"hi\\\"\", location: 'it''s here'}\n",
                               "t.yaml");
  EXPECT_EQ(c.sockets.at(0).name, "Say \"hi\"");
  EXPECT_EQ(c.sockets.at(0).location, "it's here");
}

TEST(Config, GuessableKeysAreRefusedWithHowToMakeOne) {
  auto with_secret = [](const std::string& secret) {
    return kHead + "sockets:\n  - cid: a\n    product_id: p\n    secret: " + secret + "\n";
  };
  for (const std::string weak : {"00000000000000000000000000000000", "00112233445566778899aabbccddeeff",
                                 "0102030405060708090a0b0c0d0e0f10", "abababababababababababababababab",
                                 "ffeeddccbbaa99887766554433221100"})
    EXPECT_PREFIX(
        error_of(with_secret(weak)),
        "t.yaml:8: sockets[0].secret: a guessable key (a repeated or counting pattern), not a secret: "
        "generate a real one with `openssl rand -hex 16`")
        << weak;
  EXPECT_PREFIX(
      error_of(with_secret("5f3a9c1e7b2d48e06a91c3f7d2b8")),
      "t.yaml:8: sockets[0].secret: too short: 28 hex digits, need at least 32 (128 bits): generate a "
      "real one with `openssl rand -hex 16`");
  // The example's published keys parse, but like placeholders they keep the daemon from starting.
  const Config c = load_string(with_secret("000102030405060708090A0B0C0D0E0F"), "t.yaml");
  ASSERT_EQ(c.placeholders.size(), 1u);
  EXPECT_EQ(
      c.placeholders[0],
      "t.yaml:8: sockets[0].secret: the example's published key, known to everyone: generate a real one "
      "with `openssl rand -hex 16` (and program it into the socket), or let `plugbridge provision` mint "
      "the socket (or remove this example socket)");
}

TEST(Config, OnlyRegularFilesOfSaneSizeAreRead) {
  TempDir dir;
  auto error_of_file = [](const std::string& path) -> std::string {
    try {
      load_file(path);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "(loaded)";
  };
  // A FIFO nobody writes to: refused at once, never waited on.
  const std::string fifo = (dir.path() / "fifo.yaml").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto fifo_error = std::async(std::launch::async, [&] { return error_of_file(fifo); });
  if (fifo_error.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    ADD_FAILURE() << "load_file blocked on a FIFO";
    const int w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);  // lets it go on
    if (w >= 0) ::close(w);
  }
  EXPECT_EQ(fifo_error.get(),
            fifo + ": not a configuration file: it is a FIFO (named pipe); give the path of a YAML file");
  EXPECT_EQ(error_of_file("/dev/zero"),
            "/dev/zero: not a configuration file: it is a character device; give the path of a YAML file");
  EXPECT_EQ(
      error_of_file(dir.path().string()),
      dir.path().string() + ": not a configuration file: it is a directory; give the path of a YAML file");
  const std::string big = (dir.path() / "big.yaml").string();
  {
    std::ofstream out(big);
    out << kHead << "# " << std::string(5 * 1024 * 1024, 'x') << "\n";
  }
  EXPECT_PREFIX(error_of_file(big), big + ": " + std::to_string(fs::file_size(big)) +
                                        " bytes: too large for a configuration file (at most 4 MiB)");
  EXPECT_PREFIX(error_of_file((dir.path() / "missing.yaml").string()),
                (dir.path() / "missing.yaml").string() + ": cannot open config file: No such file");
}

// The files the configuration names, checked as the user the service runs as.
TEST(ConfigCheck, CaFileMissingOrUnreadableByTheServiceUserAndDatabaseDirectory) {
  TempDir dir;
  const std::string ca = (dir.path() / "ca.pem").string();
  Config c = load_string(kHead + "database: " + (dir.path() / "db" / "pb.db").string() + "\n", "t.yaml");
  c.uplink.ca_file = ca;
  const Account me = current_account();
  auto problems = check_files(c, me);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0], "t.yaml: uplink.ca_file " + ca +
                             ": No such file or directory; fix: copy the Tuya edge gateway's CA certificate "
                             "there, or correct the path");
  EXPECT_PREFIX(problems[1], "t.yaml: database: directory " + (dir.path() / "db").string() +
                                 ": No such file or directory; fix: mkdir -p ");
  std::ofstream(ca) << "pem\n";
  fs::create_directory(dir.path() / "db");
  EXPECT_TRUE(check_files(c, me).empty());
  EXPECT_EQ(summary(c), "t.yaml: OK: 0 sockets, uplink 127.0.0.1:21883 as vendor (gateway gw1), database " +
                            (dir.path() / "db" / "pb.db").string() +
                            ", LAN 0.0.0.0:6690, control socket /run/plugbridge/control.sock");

  // As another user: a 0600 CA file of ours is not readable by it, nor is the directory writable.
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to check as another user";
  auto nobody = find_account("nobody");
  ASSERT_TRUE(nobody);
  fs::permissions(ca, fs::perms::owner_read | fs::perms::owner_write);
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  fs::permissions(dir.path() / "db", fs::perms::owner_all | fs::perms::others_exec);
  problems = check_files(c, *nobody);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_PREFIX(problems[0],
                "t.yaml: uplink.ca_file " + ca + " (root:root 0600) is not readable by nobody; fix: chgrp ");
  EXPECT_NE(problems[0].find(" && chmod 0640 " + ca), std::string::npos) << problems[0];
  EXPECT_EQ(problems[1], "t.yaml: database: directory " + (dir.path() / "db").string() +
                             " (root:root 0701) is not writable by nobody; fix: chown nobody " +
                             (dir.path() / "db").string());
  // Readable through its group: fine.
  ASSERT_EQ(::chown(ca.c_str(), 0, nobody->gid), 0);
  fs::permissions(ca, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  problems = check_files(c, *nobody);
  ASSERT_EQ(problems.size(), 1u);
  // A directory on the way it cannot enter.
  fs::permissions(dir.path(), fs::perms::owner_all);
  problems = check_files(c, *nobody);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("cannot be entered by nobody"), std::string::npos) << problems[0];
}

TEST(Config, MqttUplinkBesideTheTuyaEdge) {
  const Config c = load_string(kHead +
                                   "uplinks:\n"                 // 5
                                   "  - type: mqtt\n"           // 6
                                   "    name: homeassistant\n"  // 7
                                   "    host: broker.lan\n"     // 8
                                   "    username: plug\n"       // 9
                                   "    password_file: /etc/plugbridge/mqtt.password\n"
                                   "  - type: mqtt\n"  // 11
                                   "    name: nodered\n"
                                   "    tls: true\n"
                                   "    ca_file: /etc/ssl/ca.pem\n"
                                   "    base_topic: home/plugs\n"
                                   "    discovery: false\n"
                                   "    state_interval_s: 0\n",
                               "t.yaml");
  EXPECT_TRUE(c.uplink.enabled);
  EXPECT_EQ(c.uplink.name, "tuya");
  ASSERT_EQ(c.mqtt_uplinks.size(), 2u);
  const MqttUplink& ha = c.mqtt_uplinks[0];
  EXPECT_EQ(ha.name, "homeassistant");
  EXPECT_EQ(ha.host, "broker.lan");
  EXPECT_EQ(ha.port, 1883);
  EXPECT_FALSE(ha.tls);
  EXPECT_EQ(ha.username, "plug");
  EXPECT_EQ(ha.password_file, "/etc/plugbridge/mqtt.password");
  EXPECT_EQ(ha.client_id, "plugbridge-gw1");
  EXPECT_EQ(ha.base_topic, "plugbridge");
  EXPECT_TRUE(ha.discovery);
  EXPECT_EQ(ha.discovery_prefix, "homeassistant");
  EXPECT_EQ(ha.state_interval_s, MqttUplink{}.state_interval_s);
  EXPECT_EQ(ha.line, 6);
  const MqttUplink& nr = c.mqtt_uplinks[1];
  EXPECT_EQ(nr.port, 8883);  // the TLS port unless one is given
  EXPECT_EQ(nr.ca_file, "/etc/ssl/ca.pem");
  EXPECT_EQ(nr.base_topic, "home/plugs");
  EXPECT_FALSE(nr.discovery);
  EXPECT_EQ(nr.state_interval_s, 0);
}

TEST(Config, TuyaEdgeInTheUplinksList) {
  const Config c = load_string(
      "gateway_id: gw1\n"
      "uplinks:\n"
      "  - type: tuya\n"
      "    name: edge\n"
      "    ca_file: ca.pem\n"
      "    username: vendor\n"
      "    outbox_rate_per_s: 50\n"
      "  - type: mqtt\n",
      "t.yaml");
  EXPECT_TRUE(c.uplink.enabled);
  EXPECT_EQ(c.uplink.name, "edge");
  EXPECT_EQ(c.uplink.username, "vendor");
  EXPECT_EQ(c.uplink.outbox_rate_per_s, 50);
  ASSERT_EQ(c.mqtt_uplinks.size(), 1u);
  EXPECT_EQ(c.mqtt_uplinks[0].name, "mqtt");

  // A list without the Tuya edge: none (no credentials needed).
  const Config local = load_string("gateway_id: gw1\nuplinks:\n  - type: mqtt\n", "t.yaml");
  EXPECT_FALSE(local.uplink.enabled);
  ASSERT_EQ(local.mqtt_uplinks.size(), 1u);
}

TEST(Config, UplinksErrorsNameTheEntry) {
  std::string m = error_of(kHead + "uplinks:\n  - type: tuya\n    username: v\n    ca_file: c\n");
  EXPECT_PREFIX(m, "t.yaml:6: uplinks[0]: the Tuya edge is already configured in the uplink section");

  m = error_of(
      "gateway_id: g\nuplinks:\n  - {type: tuya, username: v, ca_file: c}\n  - {type: tuya, username: "
      "v, ca_file: c}\n");
  EXPECT_PREFIX(m, "t.yaml:4: uplinks[1]: only one uplink of type tuya");

  m = error_of(kHead + "uplinks:\n  - type: mqtt\n  - type: mqtt\n");
  EXPECT_PREFIX(m, "t.yaml:7: uplinks[1].name: 'mqtt' is already the name of uplinks[0]");

  m = error_of(kHead + "uplinks:\n  - type: mqtt\n    name: tuya\n");
  EXPECT_PREFIX(m, "t.yaml:7: uplinks[0].name: 'tuya' is already the name of uplink");

  m = error_of(kHead + "uplinks:\n  - type: zigbee\n");
  EXPECT_PREFIX(m, "t.yaml:6: uplinks[0].type: unknown uplink type 'zigbee'; valid: tuya, mqtt");

  m = error_of(kHead + "uplinks:\n  - host: x\n");
  EXPECT_PREFIX(m, "t.yaml:6: uplinks[0].type: required");

  m = error_of(kHead + "uplinks:\n  - type: mqtt\n    hots: x\n");
  EXPECT_PREFIX(m, "t.yaml:7: uplinks[0].hots: unknown key");
  EXPECT_NE(m.find("uplinks[0].discovery_prefix"), std::string::npos) << m;

  m = error_of(kHead + "uplinks:\n  - type: mqtt\n    tls: true\n");
  EXPECT_PREFIX(m, "t.yaml:6: uplinks[0].ca_file: required with tls: true");

  m = error_of(kHead + "uplinks:\n  - type: mqtt\n    ca_file: ca.pem\n");
  EXPECT_PREFIX(m, "t.yaml:7: uplinks[0].ca_file: only with tls: true");

  m = error_of(kHead + "uplinks:\n  - type: mqtt\n    password_file: p\n");
  EXPECT_PREFIX(m, "t.yaml:7: uplinks[0].password_file: a password needs a username");

  for (const char* bad : {"a/+/b", "#", "/lead", "trail/", "a//b", "with space", "a/#/b"}) {
    m = error_of(kHead + "uplinks:\n  - type: mqtt\n    base_topic: '" + bad + "'\n");
    EXPECT_PREFIX(m, "t.yaml:7: uplinks[0].base_topic: must be an MQTT topic");
  }
  m = error_of(kHead + "uplinks:\n  - type: mqtt\n    discovery_prefix: ha/#\n");
  EXPECT_PREFIX(m, "t.yaml:7: uplinks[0].discovery_prefix: must be an MQTT topic");

  m = error_of(kHead + "uplinks:\n  - type: mqtt\n    name: my plugs\n");
  EXPECT_PREFIX(m, "t.yaml:7: uplinks[0].name: must be 1..64 letters");

  m = error_of(kHead + "uplinks:\n  type: mqtt\n");
  EXPECT_PREFIX(m, "t.yaml:6: uplinks: expected a list of uplinks");

  m = error_of(kHead + "uplinks:\n  - type: mqtt\n    state_interval_s: -1\n");
  EXPECT_PREFIX(m, "t.yaml:7: uplinks[0].state_interval_s");
}

TEST(ConfigCheck, MqttUplinkFilesMustBeReadable) {
  pb::test::TempDir dir;
  const std::string yaml = "gateway_id: g\ndatabase: " + (dir.path() / "db").string() +
                           "\nuplinks:\n  - type: mqtt\n    name: ha\n    username: u\n"
                           "    password_file: " +
                           (dir.path() / "missing.password").string() + "\n";
  const Config c = load_string(yaml, "t.yaml");
  const std::vector<std::string> problems = check_files(c, current_account());
  ASSERT_EQ(problems.size(), 1u) << problems[0] << "\n" << problems.back();
  EXPECT_NE(problems[0].find("uplinks.ha.password_file"), std::string::npos) << problems[0];
  EXPECT_NE(problems[0].find("No such file"), std::string::npos) << problems[0];
  EXPECT_NE(summary(c).find("uplink ha mqtt://127.0.0.1:1883/plugbridge (Home Assistant discovery under "
                            "homeassistant)"),
            std::string::npos)
      << summary(c);
}

// Device-direct platforms: a roster socket with its own Aliyun and Tencent devices.
const std::string kAliyunSecret = "9fKq2Lx7Vb3Nc8Rt5Wm1Zp4Hs6Jd0GxQ";
const std::string kTencentPsk = "IyXmUW5sU/q1vnb5yzTkeQ==";

std::string device_socket(const std::string& cid, const std::string& secret, const std::string& aliyun_dn,
                          const std::string& tencent_dn) {
  std::string s = "  - cid: " + cid + "\n    product_id: p\n    secret: " + secret + "\n";
  if (!aliyun_dn.empty())
    s += "    aliyun: {product_key: a1wFylTxYeD, device_name: " + aliyun_dn +
         ", device_secret: " + kAliyunSecret + "}\n";
  if (!tencent_dn.empty())
    s += "    tencent: {product_id: CS0SLTKSYA, device_name: " + tencent_dn + ", psk: \"" + kTencentPsk +
         "\"}\n";
  return s;
}

TEST(Config, DeviceUplinksWithTheirDefaults) {
  const Config c = load_string(kHead +
                                   "uplinks:\n"           // 5
                                   "  - type: aliyun\n"   // 6
                                   "  - type: tencent\n"  // 7
                                   "  - type: tencent\n"  // 8
                                   "    name: tc-plain\n"
                                   "    tls: false\n"
                                   "sockets:\n" +
                                   device_socket("a", kSecretA, "plug-0001", "dev1"),
                               "t.yaml");
  ASSERT_EQ(c.device_uplinks.size(), 3u);
  const DeviceUplink defaults;
  const DeviceUplink& a = c.device_uplinks[0];
  EXPECT_EQ(a.platform, DeviceUplink::Platform::Aliyun);
  EXPECT_EQ(a.name, "aliyun");
  EXPECT_EQ(a.host, "{product_key}.iot-as-mqtt.cn-shanghai.aliyuncs.com");
  EXPECT_EQ(a.port, 1883);
  EXPECT_TRUE(a.tls);
  EXPECT_EQ(a.ca_file, "");
  EXPECT_TRUE(a.verify_hostname);
  EXPECT_EQ(a.sign_method, "hmacsha256");
  EXPECT_FALSE(a.timestamp);
  EXPECT_EQ(a.state_interval_s, defaults.state_interval_s);
  EXPECT_EQ(a.connect_rate_per_s, defaults.connect_rate_per_s);
  EXPECT_EQ(a.keepalive_s, defaults.keepalive_s);
  EXPECT_EQ(a.reconnect_max_s, defaults.reconnect_max_s);
  EXPECT_EQ(a.outbox_rate_per_s, defaults.outbox_rate_per_s);
  EXPECT_EQ(a.line, 6);
  EXPECT_EQ(a.properties, (std::map<std::string, std::string>{{"switch", "PowerSwitch"},
                                                              {"power_current", "RealTimePower"},
                                                              {"voltage_current", "RMSVoltage"},
                                                              {"cur_current", "RMSCurrent"},
                                                              {"forward_energy_total", "TotalConsumption"}}));
  const DeviceUplink& t = c.device_uplinks[1];
  EXPECT_EQ(t.platform, DeviceUplink::Platform::Tencent);
  EXPECT_EQ(t.name, "tencent");
  EXPECT_EQ(t.host, "{product_id}.iotcloud.tencentdevices.com");
  EXPECT_EQ(t.port, 8883);
  EXPECT_EQ(t.token_lifetime_s, 86400);
  EXPECT_EQ(t.connid, "");
  EXPECT_EQ(t.line, 7);
  EXPECT_EQ(t.properties, (std::map<std::string, std::string>{{"switch", "power_switch"},
                                                              {"power_current", "power"},
                                                              {"voltage_current", "voltage"},
                                                              {"cur_current", "current"},
                                                              {"forward_energy_total", "energy"}}));
  EXPECT_EQ(c.device_uplinks[2].port, 1883);  // tencent without TLS
  EXPECT_EQ(c.device_uplinks[2].name, "tc-plain");
  EXPECT_STREQ(to_string(DeviceUplink::Platform::Aliyun), "aliyun");
  EXPECT_STREQ(to_string(DeviceUplink::Platform::Tencent), "tencent");

  ASSERT_EQ(c.sockets.size(), 1u);
  ASSERT_TRUE(c.sockets[0].aliyun);
  EXPECT_EQ(*c.sockets[0].aliyun, (AliyunDevice{"a1wFylTxYeD", "plug-0001", kAliyunSecret}));
  ASSERT_TRUE(c.sockets[0].tencent);
  EXPECT_EQ(*c.sockets[0].tencent, (TencentDevice{"CS0SLTKSYA", "dev1", kTencentPsk}));
  // Device uplinks alone: no Tuya edge needed.
  const Config only = load_string("gateway_id: g\nuplinks:\n  - type: aliyun\n", "t.yaml");
  EXPECT_FALSE(only.uplink.enabled);
  EXPECT_EQ(only.device_uplinks.size(), 1u);
}

TEST(Config, DeviceUplinkKeys) {
  const Config c = load_string(kHead +
                                   "uplinks:\n"
                                   "  - type: aliyun\n"
                                   "    name: ali\n"
                                   "    host: '{product_key}.iot-as-mqtt.ap-southeast-1.aliyuncs.com'\n"
                                   "    port: 8883\n"
                                   "    ca_file: /etc/plugbridge/aliyun-ca.pem\n"
                                   "    verify_hostname: false\n"
                                   "    sign_method: hmacsha1\n"
                                   "    timestamp: true\n"
                                   "    state_interval_s: 0\n"
                                   "    connect_rate_per_s: 0.5\n"
                                   "    keepalive_s: 300\n"
                                   "    reconnect_max_s: 600\n"
                                   "    outbox_rate_per_s: 10\n"
                                   "  - type: tencent\n"
                                   "    host: mqtt.example.com\n"
                                   "    port: 0\n"
                                   "    token_lifetime_s: 3600\n"
                                   "    connid: ZR5GT\n",
                               "t.yaml");
  ASSERT_EQ(c.device_uplinks.size(), 2u);
  const DeviceUplink& a = c.device_uplinks[0];
  EXPECT_EQ(a.name, "ali");
  EXPECT_EQ(a.host, "{product_key}.iot-as-mqtt.ap-southeast-1.aliyuncs.com");
  EXPECT_EQ(a.port, 8883);
  EXPECT_EQ(a.ca_file, "/etc/plugbridge/aliyun-ca.pem");
  EXPECT_FALSE(a.verify_hostname);
  EXPECT_EQ(a.sign_method, "hmacsha1");
  EXPECT_TRUE(a.timestamp);
  EXPECT_EQ(a.state_interval_s, 0);
  EXPECT_EQ(a.connect_rate_per_s, 0.5);
  EXPECT_EQ(a.keepalive_s, 300);
  EXPECT_EQ(a.reconnect_max_s, 600);
  EXPECT_EQ(a.outbox_rate_per_s, 10);
  const DeviceUplink& t = c.device_uplinks[1];
  EXPECT_EQ(t.host, "mqtt.example.com");
  EXPECT_EQ(t.port, 8883);  // 0: the platform's
  EXPECT_EQ(t.token_lifetime_s, 3600);
  EXPECT_EQ(t.connid, "ZR5GT");
}

TEST(Config, PerSocketMqttUplinkWithTemplates) {
  const Config c = load_string(kHead +
                                   "uplinks:\n"  // 5
                                   "  - type: mqtt\n"
                                   "    name: site\n"
                                   "    per_socket: true\n"
                                   "    host: broker.lan\n"
                                   "    client_id: \"plug-{gateway_id}-{cid}\"\n"
                                   "    password: \"{password}\"\n"
                                   "    report_topic: \"site/{cid}/state\"\n"
                                   "    properties: {power_current: watts}\n"
                                   "  - type: mqtt\n"
                                   "    per_socket: false\n"
                                   "sockets:\n"
                                   "  - cid: a\n"
                                   "    product_id: p\n"
                                   "    secret: " +
                                   kSecretA +
                                   "\n"
                                   "    mqtt: {username: plug-a, password: pa55}\n",
                               "t.yaml");
  ASSERT_EQ(c.device_uplinks.size(), 1u);
  ASSERT_EQ(c.mqtt_uplinks.size(), 1u) << "per_socket: false is the Home Assistant bridge";
  const DeviceUplink& u = c.device_uplinks[0];
  EXPECT_EQ(u.platform, DeviceUplink::Platform::Mqtt);
  EXPECT_EQ(u.name, "site");
  EXPECT_EQ(u.host, "broker.lan");
  EXPECT_EQ(u.port, 1883);
  EXPECT_FALSE(u.tls);
  EXPECT_EQ(u.client_id, "plug-{gateway_id}-{cid}");
  EXPECT_EQ(u.username, "{username}");
  EXPECT_EQ(u.report_topic, "site/{cid}/state");
  EXPECT_EQ(u.command_topic, "plugbridge/{cid}/set");
  EXPECT_EQ(u.gateway_id, "gw1");
  EXPECT_EQ(u.properties.at("power_current"), "watts");
  EXPECT_EQ(u.properties.at("switch"), "switch");
  ASSERT_TRUE(c.sockets[0].mqtt.has_value());
  EXPECT_EQ(c.sockets[0].mqtt->username, "plug-a");
  EXPECT_EQ(c.sockets[0].mqtt->password, "pa55");

  const std::string up = kHead + "uplinks:\n  - type: mqtt\n    per_socket: true\n";  // keys from line 8
  EXPECT_PREFIX(error_of(up + "    client_id: \"{device}\"\n"),
                "t.yaml:8: uplinks[0].client_id: unknown placeholder; valid: {cid}");
  EXPECT_PREFIX(error_of(up + "    report_topic: \"all/state\"\n"),
                "t.yaml:8: uplinks[0].report_topic: must contain {cid}");
  EXPECT_PREFIX(error_of(up + "    command_topic: \"x/{cid}/#\"\n"),
                "t.yaml:6: uplinks[0]: topics must not contain");
  EXPECT_PREFIX(error_of(up + "    host: \"{cid}.lan\"\n"), "t.yaml:8: uplinks[0].host: no placeholders");
  EXPECT_PREFIX(error_of(up + "    token_lifetime_s: 60\n"),
                "t.yaml:8: uplinks[0].token_lifetime_s: unknown key");
  // The default password template is {password}: every socket needs one.
  EXPECT_PREFIX(error_of(up + "sockets:\n  - cid: a\n    product_id: p\n    secret: " + kSecretA + "\n"),
                "t.yaml:9: sockets[0].mqtt.password: required: uplink 'mqtt' (line 6)");
}

TEST(Config, DeviceUplinkErrorsNameTheKey) {
  const std::string up = kHead + "uplinks:\n";  // entries from line 6
  const auto err = [&](const std::string& entry) { return error_of(up + entry); };
  EXPECT_PREFIX(err("  - type: tencent\n    timestamp: true\n"),
                "t.yaml:7: uplinks[0].timestamp: only for type aliyun, this uplink is of type tencent");
  EXPECT_PREFIX(err("  - type: aliyun\n    token_lifetime_s: 600\n"),
                "t.yaml:7: uplinks[0].token_lifetime_s: only for type tencent");
  EXPECT_PREFIX(err("  - type: aliyun\n    connid: ZR5GT\n"),
                "t.yaml:7: uplinks[0].connid: only for type tencent");
  std::string m = err("  - type: tencent\n    token_lifetime: 600\n");
  EXPECT_PREFIX(m, "t.yaml:7: uplinks[0].token_lifetime: unknown key");
  EXPECT_NE(m.find("uplinks[0].token_lifetime_s"), std::string::npos) << m;
  EXPECT_PREFIX(err("  - type: mqtt\n  - type: tencent\n    token_lifetime_s: 9\n"),
                "t.yaml:8: uplinks[1].token_lifetime_s: 9 out of range 10..31536000");
  EXPECT_PREFIX(err("  - type: tencent\n    token_lifetime_s: 31536001\n"),
                "t.yaml:7: uplinks[0].token_lifetime_s: 31536001 out of range");
  for (const char* bad : {"ZR5G", "ZR5GTX", "zr5gt", "ZR-GT"})
    EXPECT_PREFIX(err(std::string("  - type: tencent\n    connid: '") + bad + "'\n"),
                  "t.yaml:7: uplinks[0].connid: must be 5 upper-case letters or digits");
  EXPECT_EQ(load_string(up + "  - type: tencent\n    connid: ''\n", "t.yaml").device_uplinks[0].connid, "");
  EXPECT_PREFIX(err("  - type: aliyun\n    sign_method: md5\n"),
                "t.yaml:7: uplinks[0].sign_method: unknown sign method 'md5'; valid: hmacsha256, hmacsha1");
  EXPECT_PREFIX(err("  - type: aliyun\n    host: '{product_id}.example.com'\n"),
                "t.yaml:7: uplinks[0].host: the only placeholder for type aliyun is {product_key}");
  EXPECT_PREFIX(err("  - type: tencent\n    host: '{product_key}.example.com'\n"),
                "t.yaml:7: uplinks[0].host: the only placeholder for type tencent is {product_id}");
  for (const char* bad : {"{product_id.x", "x}.y", "{{product_id}}", "{}.x", "{device_name}.x"})
    EXPECT_PREFIX(err(std::string("  - type: tencent\n    host: '") + bad + "'\n"),
                  "t.yaml:7: uplinks[0].host: the only placeholder");
  EXPECT_PREFIX(err("  - type: tencent\n    host: ''\n"), "t.yaml:7: uplinks[0].host: must be 1..253");
  EXPECT_PREFIX(err("  - type: aliyun\n    tls: false\n    ca_file: ca.pem\n"),
                "t.yaml:8: uplinks[0].ca_file: only with tls: true");
  EXPECT_PREFIX(err("  - type: aliyun\n    port: 65536\n"), "t.yaml:7: uplinks[0].port");
  EXPECT_PREFIX(err("  - type: aliyun\n    state_interval_s: 86401\n"),
                "t.yaml:7: uplinks[0].state_interval_s: 86401 out of range 0..86400");
  EXPECT_PREFIX(err("  - type: aliyun\n    connect_rate_per_s: 0\n"),
                "t.yaml:7: uplinks[0].connect_rate_per_s: must be more than 0");
  EXPECT_PREFIX(err("  - type: aliyun\n    connect_rate_per_s: 1000.5\n"),
                "t.yaml:7: uplinks[0].connect_rate_per_s: '1000.5' out of range 0..1000");
  EXPECT_PREFIX(err("  - type: aliyun\n    connect_rate_per_s: -1\n"),
                "t.yaml:7: uplinks[0].connect_rate_per_s");
  EXPECT_PREFIX(err("  - type: aliyun\n    keepalive_s: 5\n"),
                "t.yaml:7: uplinks[0].keepalive_s: 5 out of range");
  EXPECT_PREFIX(err("  - type: aliyun\n    reconnect_max_s: 0\n"), "t.yaml:7: uplinks[0].reconnect_max_s");
  EXPECT_PREFIX(err("  - type: aliyun\n    outbox_rate_per_s: 10001\n"),
                "t.yaml:7: uplinks[0].outbox_rate_per_s: 10001 out of range 1..10000");
  // Names are unique across all uplinks, whatever their type.
  EXPECT_PREFIX(err("  - type: aliyun\n  - type: aliyun\n"),
                "t.yaml:7: uplinks[1].name: 'aliyun' is already the name of uplinks[0]");
  EXPECT_PREFIX(err("  - type: mqtt\n  - type: tencent\n    name: mqtt\n"),
                "t.yaml:8: uplinks[1].name: 'mqtt' is already the name of uplinks[0]");
  EXPECT_PREFIX(err("  - type: aliyun\n    name: tuya\n"),
                "t.yaml:7: uplinks[0].name: 'tuya' is already the name of uplink");
  EXPECT_PREFIX(err("  - type: baidu\n"),
                "t.yaml:6: uplinks[0].type: unknown uplink type 'baidu'; valid: tuya, mqtt, aliyun, tencent");
}

TEST(Config, DevicePropertyMap) {
  const std::string up = kHead + "uplinks:\n  - type: tencent\n    properties:\n";  // keys from line 8
  const Config c = load_string(up + "      switch: relay\n"
                                    "      cur_current: ''\n"
                                    "      forward_energy_total: Energy_kWh_2\n",
                               "t.yaml");
  EXPECT_EQ(c.device_uplinks[0].properties,
            (std::map<std::string, std::string>{{"switch", "relay"},
                                                {"power_current", "power"},
                                                {"voltage_current", "voltage"},
                                                {"cur_current", ""},
                                                {"forward_energy_total", "Energy_kWh_2"}}));
  // The platform's defaults are per type.
  EXPECT_EQ(
      load_string(kHead + "uplinks:\n  - type: aliyun\n    properties: {voltage_current: V}\n", "t.yaml")
          .device_uplinks[0]
          .properties.at("power_current"),
      "RealTimePower");

  std::string m = error_of(up + "      power: watts\n");
  EXPECT_PREFIX(m, "t.yaml:8: uplinks[0].properties.power: unknown key");
  EXPECT_NE(m.find("uplinks[0].properties.forward_energy_total"), std::string::npos) << m;
  for (const std::string& bad :
       std::vector<std::string>{"1st", "with space", "dash-ed", std::string(51, 'a')})
    EXPECT_PREFIX(error_of(up + "      switch: '" + bad + "'\n"),
                  "t.yaml:8: uplinks[0].properties.switch: '" + bad + "' is not an identifier");
  EXPECT_NO_THROW(load_string(up + "      switch: _" + std::string(49, 'a') + "\n", "t.yaml"));
  EXPECT_PREFIX(error_of(up + "      switch: [a]\n"),
                "t.yaml:8: uplinks[0].properties.switch: expected a string");
  // Nothing is not "": leaving a property out is said so.
  EXPECT_PREFIX(error_of(up + "      switch:\n"),
                "t.yaml:8: uplinks[0].properties.switch: expected an identifier");
  // Two codes, one identifier: a set could not tell which was meant.
  EXPECT_PREFIX(error_of(up + "      voltage_current: x\n      cur_current: x\n"),
                "t.yaml:9: uplinks[0].properties: 'x' is the identifier of both");
  m = error_of(up + "      cur_current: power\n");  // the default of power_current
  EXPECT_PREFIX(m, "t.yaml:8: uplinks[0].properties: 'power' is the identifier of both");
  EXPECT_NE(m.find("cur_current"), std::string::npos) << m;
  EXPECT_NE(m.find("power_current"), std::string::npos) << m;
  // Disabled ones never clash.
  EXPECT_NO_THROW(load_string(up + "      voltage_current: ''\n      cur_current: ''\n", "t.yaml"));
  EXPECT_PREFIX(error_of(kHead + "uplinks:\n  - type: aliyun\n    properties: [switch]\n"),
                "t.yaml:7: uplinks[0].properties: expected a mapping");
}

TEST(Config, SocketDeviceCredentialsValidatedWithoutShowingTheSecret) {
  const std::string head = kHead + "sockets:\n  - cid: a\n    product_id: p\n    secret: " + kSecretA + "\n";
  // The block's line is 9.
  const auto aliyun = [&](const std::string& pk, const std::string& dn, const std::string& secret) {
    return error_of(head + "    aliyun: {product_key: '" + pk + "', device_name: '" + dn +
                    "', device_secret: '" + secret + "'}\n");
  };
  const auto tencent = [&](const std::string& pid, const std::string& dn, const std::string& psk) {
    return error_of(head + "    tencent: {product_id: '" + pid + "', device_name: '" + dn + "', psk: '" +
                    psk + "'}\n");
  };
  EXPECT_PREFIX(aliyun("a1wFylTxYe", "plug", kAliyunSecret),
                "t.yaml:9: sockets[0].aliyun.product_key: 'a1wFylTxYe' must be 11");
  EXPECT_PREFIX(aliyun("a1wFylTxYe_", "plug", kAliyunSecret), "t.yaml:9: sockets[0].aliyun.product_key");
  EXPECT_PREFIX(aliyun("a1wFylTxYeD", "plu", kAliyunSecret),
                "t.yaml:9: sockets[0].aliyun.device_name: 'plu' must be 4..32");
  EXPECT_PREFIX(aliyun("a1wFylTxYeD", std::string(33, 'd'), kAliyunSecret),
                "t.yaml:9: sockets[0].aliyun.device_name");
  EXPECT_PREFIX(aliyun("a1wFylTxYeD", "plug/1", kAliyunSecret), "t.yaml:9: sockets[0].aliyun.device_name");
  EXPECT_NO_THROW(
      load_string(head + "    aliyun: {product_key: a1wFylTxYeD, device_name: 'a_.:@-Z9', device_secret: " +
                      kAliyunSecret + "}\n",
                  "t.yaml"));

  const std::vector<std::pair<std::string, std::string>> bad_secrets{
      {kAliyunSecret.substr(0, 31), "32 characters expected, got 31"},
      {kAliyunSecret + "x", "32 characters expected, got 33"},
      {kAliyunSecret.substr(0, 31) + "+", "only letters and digits expected: bad character at position 32"},
  };
  for (const auto& [secret, why] : bad_secrets) {
    const std::string m = aliyun("a1wFylTxYeD", "plug", secret);
    EXPECT_PREFIX(m, "t.yaml:9: sockets[0].aliyun.device_secret: " + why);
    EXPECT_EQ(m.find(secret.substr(0, 16)), std::string::npos) << "shows the secret: " << m;
  }

  EXPECT_PREFIX(tencent("CS0SLTKSY", "dev1", kTencentPsk),
                "t.yaml:9: sockets[0].tencent.product_id: 'CS0SLTKSY' must be 10");
  EXPECT_PREFIX(tencent("cs0sltksya", "dev1", kTencentPsk), "t.yaml:9: sockets[0].tencent.product_id");
  EXPECT_PREFIX(tencent("CS0SLTKSYA", "", kTencentPsk),
                "t.yaml:9: sockets[0].tencent.device_name: '' must be 1..48");
  EXPECT_PREFIX(tencent("CS0SLTKSYA", std::string(49, 'd'), kTencentPsk),
                "t.yaml:9: sockets[0].tencent.device_name");
  EXPECT_NO_THROW(load_string(head + "    tencent: {product_id: CS0SLTKSYA, device_name: " +
                                  std::string(48, 'd') + ", psk: '" + kTencentPsk + "'}\n",
                              "t.yaml"));
  const std::vector<std::pair<std::string, std::string>> bad_psks{
      {"IyXmUW5sU/q1vnb5yzTkeQ=", "not base64: 23 characters, a multiple of 4 expected"},
      {"IyXmUW5sU/q1vnb5yzTke===", "not base64: '=' before the end at position 22"},
      {"IyXmUW5sU-q1vnb5yzTkeQ==", "not base64: bad character at position 10"},
      {"IyXmUW5sU q1vnb5yzTkeQ==", "not base64: bad character at position 10"},
      {"IyXmUW5sU/q1vnb5yzTkeR==", "not base64: bad padding"},
      {"IyXmUW5sU/q1vnb5yzTk", "decodes to 15 bytes, 16..64 expected"},
      {std::string(88, 'A'), "decodes to 66 bytes, 16..64 expected"},
  };
  for (const auto& [psk, why] : bad_psks) {
    const std::string m = tencent("CS0SLTKSYA", "dev1", psk);
    EXPECT_PREFIX(m, "t.yaml:9: sockets[0].tencent.psk: " + why);
    EXPECT_EQ(m.find(psk.substr(0, 12)), std::string::npos) << "shows the key: " << m;
  }
  // 16 and 64 bytes are fine.
  EXPECT_NO_THROW(load_string(head + "    tencent: {product_id: CS0SLTKSYA, device_name: d, psk: '" +
                                  std::string(84, 'A') + "AA=='}\n",
                              "t.yaml"));

  EXPECT_PREFIX(error_of(head + "    aliyun: {product_key: a1wFylTxYeD, device_name: plug}\n"),
                "t.yaml:9: sockets[0].aliyun.device_secret: required key missing");
  EXPECT_PREFIX(error_of(head + "    tencent: {product_id: CS0SLTKSYA, psk: x}\n"),
                "t.yaml:9: sockets[0].tencent.device_name: required key missing");
  EXPECT_PREFIX(
      error_of(head +
               "    tencent: {product_id: CS0SLTKSYA, device_name: d, psk: 'AAAAAAAAAAAAAAAAAAAAAA==', "
               "secret: x}\n"),
      "t.yaml:9: sockets[0].tencent.secret: unknown key");
  EXPECT_PREFIX(error_of(head + "    aliyun: yes\n"), "t.yaml:9: sockets[0].aliyun: expected a mapping");
}

TEST(Config, OneDeviceForOneSocketOnly) {
  std::string m =
      error_of(kHead + "sockets:\n" + device_socket("a", kSecretA, "plug-0001", "dev1") +  // 6..10
               device_socket("b", kSecretB, "plug-0001", "dev2"));                         // 11..15
  EXPECT_PREFIX(
      m,
      "t.yaml:14: sockets[1].aliyun: Aliyun device a1wFylTxYeD/plug-0001 is also sockets[0].aliyun (line 9)");
  m = error_of(kHead + "sockets:\n" + device_socket("a", kSecretA, "plug-0001", "dev1") +
               device_socket("b", kSecretB, "plug-0002", "dev1"));
  EXPECT_PREFIX(
      m,
      "t.yaml:15: sockets[1].tencent: Tencent device CS0SLTKSYA/dev1 is also sockets[0].tencent (line 10)");
  // The same name on both platforms, or under another product, is another device.
  const Config c =
      load_string(kHead + "sockets:\n" + device_socket("a", kSecretA, "dev1", "dev1") +
                      device_socket("b", kSecretB, "dev2", "") +
                      "  - cid: c\n    product_id: p\n    secret: 0c7d2e9a4f1b6385e0a7c2d94b1f8e63\n"
                      "    aliyun: {product_key: a1wFylTxYeE, device_name: dev1, device_secret: " +
                      kAliyunSecret + "}\n",
                  "t.yaml");
  EXPECT_EQ(c.sockets.size(), 3u);
  EXPECT_FALSE(c.sockets[1].tencent);
}

TEST(ConfigCheck, DeviceUplinksInTheSummaryAndTheirCaFileChecked) {
  TempDir dir;
  const std::string ca = (dir.path() / "ali-ca.pem").string();
  const Config c = load_string(
      "gateway_id: g\ndatabase: ':memory:'\nuplinks:\n"
      "  - type: aliyun\n    ca_file: " +
          ca +
          "\n  - {type: tencent, name: tc}\n  - {type: tencent, name: tc2, tls: false}\n"
          "sockets:\n" +
          device_socket("a", kSecretA, "plug-0001", "") + device_socket("b", kSecretB, "plug-0002", "dev2"),
      "t.yaml");
  EXPECT_EQ(summary(c),
            "t.yaml: OK: 2 sockets, no Tuya uplink, aliyun 'aliyun' (2 sockets), tencent 'tc' (1 socket), "
            "tencent 'tc2' (1 socket), database :memory:, LAN 0.0.0.0:6690, control socket "
            "/run/plugbridge/control.sock");
  auto problems = check_files(c, current_account());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "t.yaml: uplinks.aliyun.ca_file " + ca +
                             ": No such file or directory; fix: copy the CA that signed the platform's "
                             "certificate there, or correct the path (leave it out for the system's CAs)");
  std::ofstream(ca) << "pem\n";
  EXPECT_TRUE(check_files(c, current_account()).empty());

  // No socket has credentials: accepted, and the summary says so.
  const Config none = load_string("gateway_id: g\nuplinks:\n  - type: tencent\n", "t.yaml");
  EXPECT_NE(summary(none).find(", no Tuya uplink, tencent 'tencent' (0 sockets), database"),
            std::string::npos)
      << summary(none);
}

}  // namespace
}  // namespace pb::config
