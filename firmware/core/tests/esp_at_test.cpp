// EspAt driver against a scripted fake modem: the test plays the ESP-AT firmware, byte by byte.
#include <gtest/gtest.h>

#include <algorithm>
#include <pbfw/esp_at.hpp>
#include <pbfw/lan_client.hpp>
#include <set>
#include <string>
#include <vector>

namespace pbfw {
namespace {

class FakeUart final : public EspAtUart {
 public:
  void write(const uint8_t* data, size_t len) override {
    out.append(reinterpret_cast<const char*>(data), len);
  }
  std::string take() {
    std::string s;
    s.swap(out);
    return s;
  }
  std::string out;
};

class Listener final : public EspAtListener {
 public:
  void on_link_up() override { ++ups; }
  void on_link_down() override { ++downs; }
  void on_link_bytes(const uint8_t* d, size_t n) override { rx.append(reinterpret_cast<const char*>(d), n); }
  void on_smartconfig_done(bool ok) override { smart.push_back(ok); }
  int ups = 0;
  int downs = 0;
  std::string rx;
  std::vector<bool> smart;
};

const uint8_t kPsk[4] = {0x01, 0xAB, 0x00, 0xFF};

EspAtConfig config(const char* cid = "plug-1") {
  EspAtConfig c;
  c.ssid = "home,net";
  c.password = "pa\"ss";
  c.host = "192.168.1.2";
  c.port = 7443;
  c.cid = cid;
  c.psk = kPsk;
  c.psk_len = sizeof kPsk;
  c.backoff_initial_ms = 1000;
  c.backoff_max_ms = 16000;
  return c;
}

struct Rig {
  explicit Rig(const EspAtConfig& c = config()) : esp(uart, listener, c) {}

  // The modem's bytes, one UART byte at a time (the worst chunking).
  void feed(const std::string& s) {
    for (char c : s) esp.on_uart_byte(static_cast<uint8_t>(c));
  }
  void advance(uint64_t ms) {
    now += ms;
    esp.tick(now);
  }
  // Steps time until the driver writes something (or gives up after `limit_ms`).
  std::string next(uint64_t limit_ms = 200000) {
    for (uint64_t t = 0; t <= limit_ms && uart.out.empty(); t += 10) advance(10);
    return uart.take();
  }
  // Answers "OK" to the expected command.
  void expect_ok(const std::string& cmd, const std::string& reply = "\r\nOK\r\n") {
    EXPECT_EQ(next(), cmd + "\r\n");
    feed(reply);
  }
  void connect() {
    esp.start(now);
    expect_ok("AT");
    expect_ok("ATE0");
    expect_ok("AT+CWMODE=1");
    expect_ok("AT+CIPMUX=0");
    expect_ok("AT+CWJAP=\"home\\,net\",\"pa\\\"ss\"", "WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n");
    expect_ok("AT+CIPSSLCPSKHEX=\"01ab00ff\",\"plug-1\"");
    expect_ok("AT+CIPSTART=\"SSL\",\"192.168.1.2\",7443", "CONNECT\r\n\r\nOK\r\n");
    ASSERT_TRUE(esp.link_up());
    ASSERT_EQ(listener.ups, 1);
  }

  FakeUart uart;
  Listener listener;
  EspAt esp;
  uint64_t now = 1000;
};

TEST(EspAt, JoinsConfiguresPskAndConnects) {
  Rig r;
  r.connect();
  EXPECT_EQ(r.esp.phase(), EspAt::Phase::Connected);
  EXPECT_EQ(r.esp.connects(), 1u);
  EXPECT_TRUE(r.esp.wifi_up());
}

TEST(EspAt, FirstAttemptIsJitteredWithinTheInitialBackoff) {
  Rig r;
  r.esp.start(r.now);
  EXPECT_LE(r.esp.retry_at_ms(), r.now + 1000);
  EXPECT_EQ(r.next(), "AT\r\n");
}

TEST(EspAt, SendsThroughPromptAndQueuesWhileOneSendIsInFlight) {
  Rig r;
  r.connect();
  EXPECT_TRUE(r.esp.send(reinterpret_cast<const uint8_t*>("hello"), 5));
  EXPECT_EQ(r.next(), "AT+CIPSEND=5\r\n");
  EXPECT_TRUE(r.esp.send(reinterpret_cast<const uint8_t*>("xyz"), 3));  // queued behind
  r.feed("\r\nOK\r\n\r\n");
  EXPECT_EQ(r.uart.take(), "");  // nothing before the prompt
  r.feed(">");
  EXPECT_EQ(r.uart.take(), "hello");
  r.advance(10);
  EXPECT_EQ(r.uart.take(), "");  // one send in flight
  r.feed("\r\nRecv 5 bytes\r\n\r\nSEND OK\r\n");
  EXPECT_EQ(r.next(), "AT+CIPSEND=3\r\n");
  r.feed("\r\nOK\r\n> ");
  EXPECT_EQ(r.uart.take(), "xyz");
  r.feed("\r\nRecv 3 bytes\r\n\r\nSEND OK\r\n");
  r.advance(10);
  EXPECT_EQ(r.esp.queued(), 0u);
  EXPECT_EQ(r.uart.take(), "");
}

TEST(EspAt, RefusesWhatDoesNotFitAndWhenDown) {
  Rig r;
  uint8_t big[EspAt::kTxRing] = {};
  EXPECT_FALSE(r.esp.send(big, 1));  // no link
  r.connect();
  EXPECT_TRUE(r.esp.send(big, sizeof big - 10));
  EXPECT_FALSE(r.esp.send(big, 11));
  EXPECT_TRUE(r.esp.send(big, 10));
  // Large queues go out in chunks.
  EXPECT_EQ(r.next(), "AT+CIPSEND=" + std::to_string(EspAt::kMaxSendChunk) + "\r\n");
}

TEST(EspAt, ReceivesIpdSplitAcrossChunksWithoutInterpretingThePayload) {
  Rig r;
  r.connect();
  // The payload contains line ends, "OK", ':' and "CLOSED": all of it is data.
  const std::string payload = std::string("\r\nOK\r\nCLOSED\r\n:\0\xff", 16);
  r.feed("\r\n+IPD," + std::to_string(payload.size()) + ":" + payload);
  r.feed("\r\n+IPD,3:abc");
  r.esp.on_uart_bytes(reinterpret_cast<const uint8_t*>("+IPD,0,2:de\r\n"), 13);  // multi-connection form
  EXPECT_EQ(r.listener.rx, payload + "abcde");
  EXPECT_TRUE(r.esp.link_up());
  EXPECT_EQ(r.listener.downs, 0);
}

TEST(EspAt, IgnoresGarbageAndOverlongLines) {
  Rig r;
  r.connect();
  r.feed("\x01\x02zz\r\n+CWJAP:3\r\nWIFI CONNECTED\r\n");
  r.feed(std::string(EspAt::kLineMax * 3, 'O') + "\r\n");
  r.feed("\xfe\xfe\r\n");
  EXPECT_TRUE(r.esp.link_up());
  EXPECT_TRUE(r.esp.send(reinterpret_cast<const uint8_t*>("a"), 1));
  EXPECT_EQ(r.next(), "AT+CIPSEND=1\r\n");
}

TEST(EspAt, GatewayCloseReconnectsWithOnlyCipstart) {
  Rig r;
  r.connect();
  r.feed("CLOSED\r\n");
  EXPECT_FALSE(r.esp.link_up());
  EXPECT_EQ(r.listener.downs, 1);
  EXPECT_EQ(r.esp.phase(), EspAt::Phase::Backoff);
  const uint32_t delay = r.esp.last_backoff_ms();
  EXPECT_GE(delay, 500u);
  EXPECT_LE(delay, 1000u);
  const uint64_t closed_at = r.now;
  EXPECT_EQ(r.next(), "AT+CIPSTART=\"SSL\",\"192.168.1.2\",7443\r\n");
  EXPECT_GE(r.now, closed_at + delay);
  r.feed("CONNECT\r\n\r\nOK\r\n");
  EXPECT_TRUE(r.esp.link_up());
  EXPECT_EQ(r.listener.ups, 2);
}

TEST(EspAt, GatewayDownBacksOffExponentiallyUpToTheCap) {
  Rig r;
  r.connect();
  r.feed("CLOSED\r\n");
  std::vector<uint32_t> delays;
  for (int i = 0; i < 8; ++i) {
    delays.push_back(r.esp.last_backoff_ms());
    EXPECT_EQ(r.next(), "AT+CIPSTART=\"SSL\",\"192.168.1.2\",7443\r\n");
    r.feed("CLOSED\r\n\r\nERROR\r\n");  // gateway not listening
    EXPECT_EQ(r.next(), "AT+CIPCLOSE\r\n");
    r.feed("\r\nERROR\r\n");  // nothing open: fine
  }
  for (size_t i = 0; i < delays.size(); ++i) {
    const uint64_t base = std::min<uint64_t>(1000ull << i, 16000);
    EXPECT_GE(delays[i], base / 2) << i;
    EXPECT_LE(delays[i], base) << i;
  }
  EXPECT_EQ(r.listener.ups, 1);
}

TEST(EspAt, WifiLossRejoinsBeforeReconnecting) {
  Rig r;
  r.connect();
  r.feed("WIFI DISCONNECT\r\n");
  EXPECT_FALSE(r.esp.link_up());
  EXPECT_FALSE(r.esp.wifi_up());
  EXPECT_EQ(r.listener.downs, 1);
  EXPECT_EQ(r.next(), "AT+CWJAP=\"home\\,net\",\"pa\\\"ss\"\r\n");
  r.feed("WIFI DISCONNECT\r\n+CWJAP:3\r\n\r\nFAIL\r\n");  // router still down
  EXPECT_EQ(r.esp.phase(), EspAt::Phase::Backoff);
  EXPECT_EQ(r.next(), "AT+CWJAP=\"home\\,net\",\"pa\\\"ss\"\r\n");
  r.feed("WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n");
  EXPECT_EQ(r.next(), "AT+CIPSTART=\"SSL\",\"192.168.1.2\",7443\r\n");
  r.feed("CONNECT\r\n\r\nOK\r\n");
  EXPECT_TRUE(r.esp.link_up());
}

TEST(EspAt, SilentModemTimesOutAndResynchronises) {
  Rig r;
  r.esp.start(r.now);
  EXPECT_EQ(r.next(), "AT\r\n");
  r.advance(3000);  // cmd_timeout
  EXPECT_EQ(r.esp.phase(), EspAt::Phase::Backoff);
  EXPECT_EQ(r.esp.failures(), 1u);
  EXPECT_EQ(r.next(), "AT\r\n");
  r.feed("\r\nOK\r\n");
  EXPECT_EQ(r.next(), "ATE0\r\n");
}

TEST(EspAt, SendTimeoutDropsTheLink) {
  Rig r;
  r.connect();
  ASSERT_TRUE(r.esp.send(reinterpret_cast<const uint8_t*>("a"), 1));
  EXPECT_EQ(r.next(), "AT+CIPSEND=1\r\n");
  r.advance(5000);
  EXPECT_FALSE(r.esp.link_up());
  EXPECT_EQ(r.listener.downs, 1);
  EXPECT_EQ(r.next(), "AT\r\n");  // modem suspect: start over
}

TEST(EspAt, SendFailDropsTheLink) {
  Rig r;
  r.connect();
  ASSERT_TRUE(r.esp.send(reinterpret_cast<const uint8_t*>("a"), 1));
  EXPECT_EQ(r.next(), "AT+CIPSEND=1\r\n");
  r.feed("\r\nOK\r\n>");
  EXPECT_EQ(r.uart.take(), "a");
  r.feed("\r\nSEND FAIL\r\n");
  EXPECT_FALSE(r.esp.link_up());
  EXPECT_EQ(r.next(), "AT+CIPCLOSE\r\n");
}

TEST(EspAt, BusyCommandIsRepeated) {
  Rig r;
  r.esp.start(r.now);
  EXPECT_EQ(r.next(), "AT\r\n");
  r.feed("busy p...\r\n");
  EXPECT_EQ(r.next(), "AT\r\n");
  r.feed("\r\nOK\r\n");
  EXPECT_EQ(r.next(), "ATE0\r\n");
}

TEST(EspAt, CloseFromTheLanClientNotifiesLaterAndReconnects) {
  Rig r;
  r.connect();
  r.esp.close();
  EXPECT_EQ(r.listener.downs, 0);  // not re-entered
  EXPECT_FALSE(r.esp.send(reinterpret_cast<const uint8_t*>("a"), 1));
  r.advance(10);
  EXPECT_EQ(r.listener.downs, 1);
  EXPECT_EQ(r.next(), "AT+CIPCLOSE\r\n");
  r.feed("CLOSED\r\n\r\nOK\r\n");
  EXPECT_EQ(r.next(), "AT+CIPSTART=\"SSL\",\"192.168.1.2\",7443\r\n");
}

TEST(EspAt, ModemRebootStartsOver) {
  Rig r;
  r.connect();
  r.feed("\r\nready\r\n");
  EXPECT_FALSE(r.esp.link_up());
  EXPECT_EQ(r.listener.downs, 1);
  EXPECT_EQ(r.next(), "AT\r\n");
}

TEST(EspAt, SmartConfigSucceedsThenUsesTheStoredAccessPoint) {
  Rig r;
  r.connect();
  r.esp.start_smartconfig(r.now);
  EXPECT_EQ(r.listener.downs, 1);
  EXPECT_EQ(r.next(), "AT+CWMODE=1\r\n");
  r.feed("\r\nOK\r\n");
  EXPECT_EQ(r.next(), "AT+CWSTARTSMART=1\r\n");
  r.feed("\r\nOK\r\n");
  r.advance(5000);
  EXPECT_EQ(r.uart.take(), "");
  r.feed("smartconfig type:ESPTOUCH\r\nSmart get wifi info\r\nssid:new\r\npassword:pw\r\n");
  r.feed("WIFI CONNECTED\r\nWIFI GOT IP\r\nsmartconfig connected wifi\r\n");
  EXPECT_EQ(r.next(), "AT+CWSTOPSMART\r\n");
  r.feed("\r\nOK\r\n");
  ASSERT_EQ(r.listener.smart.size(), 1u);
  EXPECT_TRUE(r.listener.smart[0]);
  EXPECT_EQ(r.next(), "AT\r\n");
  r.feed("\r\nOK\r\n");
  r.expect_ok("ATE0");
  r.expect_ok("AT+CWMODE=1");
  r.expect_ok("AT+CIPMUX=0");
  r.expect_ok("AT+CIPSSLCPSKHEX=\"01ab00ff\",\"plug-1\"");  // wifi already up
  r.expect_ok("AT+CIPCLOSE");
  EXPECT_EQ(r.next(), "AT+CIPSTART=\"SSL\",\"192.168.1.2\",7443\r\n");
  r.feed("\r\nready\r\n");  // reboot: the stored AP is joined with a bare AT+CWJAP
  r.expect_ok("AT");
  r.expect_ok("ATE0");
  r.expect_ok("AT+CWMODE=1");
  r.expect_ok("AT+CIPMUX=0");
  EXPECT_EQ(r.next(), "AT+CWJAP\r\n");
}

TEST(EspAt, SmartConfigStartedDuringAJoinIsNotCutShortByItsFailure) {
  Rig r;
  r.esp.start(r.now);
  r.expect_ok("AT");
  r.expect_ok("ATE0");
  r.expect_ok("AT+CWMODE=1");
  r.expect_ok("AT+CIPMUX=0");
  EXPECT_EQ(r.next(), "AT+CWJAP=\"home\\,net\",\"pa\\\"ss\"\r\n");
  r.esp.start_smartconfig(r.now);  // button held while joining
  r.feed("+CWJAP:3\r\n\r\nFAIL\r\n");
  EXPECT_EQ(r.esp.phase(), EspAt::Phase::SmartConfig);
  r.expect_ok("AT+CWMODE=1");
  EXPECT_EQ(r.next(), "AT+CWSTARTSMART=1\r\n");
}

TEST(EspAt, ImplausibleIpdLengthIsIgnored) {
  Rig r;
  r.connect();
  r.feed("+IPD,999999:xyz\r\n+IPD,2:ok");
  EXPECT_EQ(r.listener.rx, "ok");
}

TEST(EspAt, SmartConfigTimesOut) {
  Rig r;
  r.esp.start_smartconfig(r.now);
  r.expect_ok("AT+CWMODE=1");
  r.expect_ok("AT+CWSTARTSMART=1");
  r.advance(119000);
  EXPECT_EQ(r.uart.take(), "");
  EXPECT_EQ(r.next(), "AT+CWSTOPSMART\r\n");
  r.feed("\r\nOK\r\n");
  ASSERT_EQ(r.listener.smart.size(), 1u);
  EXPECT_FALSE(r.listener.smart[0]);
  EXPECT_EQ(r.next(), "AT\r\n");
}

TEST(EspAt, NextWakeupIsTheNearestDeadline) {
  Rig r;
  EXPECT_EQ(r.esp.next_wakeup_ms(), UINT64_MAX);  // not started
  r.esp.start(r.now);
  EXPECT_EQ(r.esp.next_wakeup_ms(), r.esp.retry_at_ms());
  EXPECT_EQ(r.next(), "AT\r\n");
  EXPECT_EQ(r.esp.next_wakeup_ms(), r.now + 3000);  // the command timeout

  Rig c;
  c.connect();
  EXPECT_EQ(c.esp.next_wakeup_ms(), UINT64_MAX);  // connected and idle: nothing to time
  ASSERT_TRUE(c.esp.send(reinterpret_cast<const uint8_t*>("a"), 1));
  EXPECT_EQ(c.esp.next_wakeup_ms(), c.now + 5000);  // the send timeout
  c.esp.close();
  EXPECT_EQ(c.esp.next_wakeup_ms(), c.now);  // owes on_link_down
}

TEST(EspAt, DeadlinesStartFromTheLatestTimeSeen) {
  // A port that sleeps between deadlines only reports the time with the next event.
  Rig r;
  r.connect();
  r.now += 60000;  // a quiet minute without ticks
  r.esp.set_time(r.now);
  ASSERT_TRUE(r.esp.send(reinterpret_cast<const uint8_t*>("a"), 1));
  EXPECT_EQ(r.esp.next_wakeup_ms(), r.now + 5000);
  r.esp.tick(r.now + 10);
  EXPECT_TRUE(r.esp.link_up());  // not timed out against the stale clock
  r.now += 60000;
  r.esp.set_time(r.now);
  r.feed("CLOSED\r\n");
  EXPECT_GE(r.esp.retry_at_ms(), r.now + 500);  // the backoff too
}

TEST(EspAt, ReconnectDelaysAreSpreadAcrossSockets) {
  // 100 sockets lose the gateway at the same instant: their retries must not line up.
  std::vector<uint32_t> delays;
  std::vector<std::string> cids;
  for (int i = 0; i < 100; ++i) cids.push_back("plug-" + std::to_string(i));
  for (int i = 0; i < 100; ++i) {
    EspAtConfig c = config(cids[i].c_str());
    c.psk_len = 0;  // not needed here: only the backoff is looked at
    FakeUart uart;
    Listener l;
    EspAt esp(uart, l, c);
    esp.start(0);
    esp.tick(1000);
    esp.on_uart_bytes(reinterpret_cast<const uint8_t*>("\r\nERROR\r\n"), 9);  // "AT" fails
    for (int k = 0; k < 3; ++k) {  // three failures: base 8 s, delay in [4, 8] s
      uint64_t t = esp.retry_at_ms();
      esp.tick(t);
      esp.on_uart_bytes(reinterpret_cast<const uint8_t*>("\r\nERROR\r\n"), 9);
    }
    delays.push_back(esp.last_backoff_ms());
  }
  std::set<uint32_t> distinct(delays.begin(), delays.end());
  EXPECT_GE(distinct.size(), 90u);
  const auto [mn, mx] = std::minmax_element(delays.begin(), delays.end());
  EXPECT_GE(*mn, 4000u);
  EXPECT_LE(*mx, 8000u);
  EXPECT_GE(*mx - *mn, 3000u);  // spread over most of the window
  // No 100 ms bucket holds more than a handful of sockets.
  std::vector<int> buckets(41, 0);
  for (uint32_t d : delays) ++buckets[(d - 4000) / 100];
  EXPECT_LE(*std::max_element(buckets.begin(), buckets.end()), 10);
}

// The real LAN client over the driver: Hello out through CIPSEND, HelloAck in through +IPD.
class NullLanListener final : public LanClientListener {
 public:
  void on_command(const proto::Command&) override {}
};

class Glue final : public EspAtListener {
 public:
  void on_link_up() override { lan->on_connected(*now); }
  void on_link_down() override { lan->on_disconnected(); }
  void on_link_bytes(const uint8_t* d, size_t n) override { lan->on_bytes(d, n, *now); }
  LanClient* lan = nullptr;
  const uint64_t* now = nullptr;
};

TEST(EspAt, CarriesTheLanClientSession) {
  FakeUart uart;
  Glue glue;
  EspAtConfig c = config();
  EspAt esp(uart, glue, c);
  NullLanListener ll;
  Record records[8];
  LanClientConfig lc{"plug-1", "fw", 0, 7};
  LanClient lan(esp, ll, records, 8, lc);
  uint64_t now = 0;
  glue.lan = &lan;
  glue.now = &now;
  auto feed = [&](const std::string& s) {
    esp.on_uart_bytes(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  auto next = [&] {
    for (int i = 0; i < 100000 && uart.out.empty(); ++i) {
      now += 10;
      esp.tick(now);
      lan.tick(now);
    }
    return uart.take();
  };
  esp.start(now);
  for (const char* cmd : {"AT", "ATE0", "AT+CWMODE=1", "AT+CIPMUX=0"}) {
    EXPECT_EQ(next(), std::string(cmd) + "\r\n");
    feed("OK\r\n");
  }
  next();
  feed("WIFI GOT IP\r\nOK\r\n");
  next();
  feed("OK\r\n");
  EXPECT_EQ(next().rfind("AT+CIPSTART", 0), 0u);
  feed("CONNECT\r\nOK\r\n");  // the LAN client sends its Hello right away
  const std::string cipsend = next();
  ASSERT_EQ(cipsend.rfind("AT+CIPSEND=", 0), 0u);
  const size_t n = std::stoul(cipsend.substr(11));
  feed("OK\r\n>");
  const std::string hello = uart.take();
  ASSERT_EQ(hello.size(), n);
  proto::Message m{};
  size_t consumed = 0;
  ASSERT_EQ(proto::decode(reinterpret_cast<const uint8_t*>(hello.data()), hello.size(), m, consumed),
            proto::DecodeStatus::Ok);
  EXPECT_EQ(m.type, proto::MsgType::Hello);
  feed("SEND OK\r\n");

  proto::Message ack{};
  ack.type = proto::MsgType::HelloAck;
  ack.hello_ack = proto::HelloAck{1'700'000'000'000, 0, 30};
  uint8_t buf[proto::kMaxFrame];
  const size_t len = proto::encode(ack, buf, sizeof buf);
  feed("+IPD," + std::to_string(len) + ":");
  for (size_t i = 0; i < len; ++i) esp.on_uart_byte(buf[i]);
  EXPECT_TRUE(lan.session_up());
  feed("CLOSED\r\n");
  EXPECT_FALSE(lan.connected());
}

}  // namespace
}  // namespace pbfw
