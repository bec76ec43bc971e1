// The socket firmware image: wires the portable core (pbfw::SocketCore) to the STM32G0 drivers.
// Interrupts only move bytes (UART RX -> ring) and count milliseconds; everything else runs in this loop.
#include <pbfw/socket_core.hpp>
#include <stm32g0/board.hpp>
#include <stm32g0/drivers.hpp>
#include <stm32g0/layout.hpp>

#if __has_include(<pbfw/esp_at.hpp>)
#include <pbfw/esp_at.hpp>
#define PBFW_HAVE_ESP_AT 1
#endif

#if __has_include(<pbfw/flash_storage.hpp>)
#include <pbfw/flash_storage.hpp>
#include <stm32g0/data_flash.hpp>
#define PBFW_HAVE_FLASH_STORAGE 1
#endif

#ifndef PBFW_RECORDS
#define PBFW_RECORDS 16
#endif
#ifndef PBFW_FW_VERSION
#define PBFW_FW_VERSION "0.0.0"
#endif

using namespace stm32g0;

namespace {

// 4800 baud is ~0.5 byte/ms: 64 bytes cover any main-loop stall. 115200 is ~11.5 bytes/ms.
Usart<64> g_meter_uart(kUsart2Base);
Usart<256> g_esp_uart(kUsart1Base);

class BoardHal final : public pbfw::Hal {
 public:
  uint64_t now_ms() override { return millis(); }
  void set_relay(bool on) override { pin_write(board::kRelay, on); }
  void set_led(uint8_t r, uint8_t g, uint8_t b) override {
    if (shown_ && r == r_ && g == g_ && b == b_) return;  // the LED keeps its colour: no need to resend
    shown_ = true;
    r_ = r, g_ = g, b_ = b;
    ws2812_show(r, g, b);
  }

 private:
  bool shown_ = false;
  uint8_t r_ = 0, g_ = 0, b_ = 0;
};

#if PBFW_HAVE_FLASH_STORAGE
// Energy, relay state, limits and calibration in the wear-levelled log on the data pages.
DataFlash g_flash;
pbfw::FlashStorage g_storage(g_flash);
#else
// Stand-in while the flash log is not available: nothing survives a power cut.
class VolatileStorage final : public pbfw::Storage {
 public:
  bool load(pbfw::PersistentState& out) override {
    if (!valid_) return false;
    out = state_;
    return true;
  }
  void save(const pbfw::PersistentState& s) override {
    state_ = s;
    valid_ = true;
  }

 private:
  pbfw::PersistentState state_{};
  bool valid_ = false;
};
VolatileStorage g_storage;
#endif

// cid from the 96-bit unique device ID until the device-information page is parsed.
char g_cid[pbfw::proto::kCidMax + 1];
void make_cid() {
  const auto* uid = reinterpret_cast<const volatile uint32_t*>(kUidBase);
  static constexpr char kHex[] = "0123456789abcdef";
  char* p = g_cid;
  *p++ = 'p', *p++ = 'b', *p++ = '-';
  for (int w = 2; w >= 0; --w)  // no printf: newlib's stdio would drag in malloc
    for (int shift = 28; shift >= 0; shift -= 4) *p++ = kHex[(uid[w] >> shift) & 0xF];
  *p = '\0';
}

pbfw::Record g_records[PBFW_RECORDS];

BoardHal g_hal;

#if PBFW_HAVE_ESP_AT
class EspUart final : public pbfw::EspAtUart {
 public:
  void write(const uint8_t* data, size_t len) override { g_esp_uart.write(data, len); }
};
EspUart g_esp_port;

class Link final : public pbfw::EspAtListener {
 public:
  void attach(pbfw::SocketCore* core) { core_ = core; }
  void on_link_up() override { core_->on_transport_connected(); }
  void on_link_down() override { core_->on_transport_disconnected(); }
  void on_link_bytes(const uint8_t* d, size_t n) override { core_->on_transport_bytes(d, n); }

 private:
  pbfw::SocketCore* core_ = nullptr;
};
Link g_link;
#else
// Stand-in while no ESP-AT driver is available: always offline; the core keeps its records.
class OfflineTransport final : public pbfw::LanTransport {
 public:
  bool send(const uint8_t*, size_t) override { return false; }
  void close() override {}
};
OfflineTransport g_offline;
#endif

// Button: pressed = low. Debounced by requiring a stable level for kDebounceMs.
class Button {
 public:
  static constexpr uint32_t kDebounceMs = 30;
  // Returns true on a debounced release after a press (a click).
  bool poll(uint64_t now) {
    const bool raw = !pin_read(board::kButton);
    if (raw != last_raw_) {
      last_raw_ = raw;
      changed_at_ = now;
    }
    if (raw != stable_ && now - changed_at_ >= kDebounceMs) {
      stable_ = raw;
      return !stable_;
    }
    return false;
  }

 private:
  bool last_raw_ = false, stable_ = false;
  uint64_t changed_at_ = 0;
};

void board_init() {
  clock_init();
  systick_init();
  gpio_clocks_on();
  reg(kRccBase, rcc::APBENR1) |= rcc::APBENR1_USART2;
  reg(kRccBase, rcc::APBENR2) |= rcc::APBENR2_USART1 | rcc::APBENR2_SYSCFG;

  pin_output(board::kRelay, false);  // off until the core restores the saved state
  pin_input(board::kButton, gpio::Pull::Up);
  ws2812_init(board::kLed);
  pin_output(board::kEspEnable, true);

  pin_alternate(board::kMeterRx, board::kMeterAf, gpio::Pull::Up);  // idle high if the meter is unpowered
  g_meter_uart.init(kMeterBrr, UartFormat::k8E1, /*rx=*/true, /*tx=*/false);
  pin_alternate(board::kEspTx, board::kEspAf);
  pin_alternate(board::kEspRx, board::kEspAf, gpio::Pull::Up);
  g_esp_uart.init(kEspBrr, UartFormat::k8N1, /*rx=*/true, /*tx=*/true);
  nvic_enable(irq::kUsart1);
  nvic_enable(irq::kUsart2);
}

}  // namespace

extern "C" void USART1_IRQHandler() {
  g_esp_uart.on_irq();
}
extern "C" void USART2_IRQHandler() {
  g_meter_uart.on_irq();
}

extern "C" void app_main() {
  board_init();
  watchdog_start(4000);
  make_cid();

  // The big objects are static so they count in the linker's RAM budget instead of hiding on the stack.
  static const pbfw::SocketConfig cfg{.cid = g_cid, .fw_version = PBFW_FW_VERSION};
#if PBFW_HAVE_ESP_AT
  static pbfw::EspAtConfig esp_cfg;
  esp_cfg.cid = g_cid;
  esp_cfg.seed = *reinterpret_cast<const volatile uint32_t*>(kUidBase) ^ static_cast<uint32_t>(millis());
  // The gateway address and PSK come from the device-information page (not parsed yet): without them
  // the link is not started and the socket works offline.
  static pbfw::EspAt esp(g_esp_port, g_link, esp_cfg);
  static pbfw::SocketCore core(g_hal, g_storage, esp, cfg, g_records, PBFW_RECORDS);
  g_link.attach(&core);
  const bool link_configured = esp_cfg.host != nullptr && esp_cfg.psk_len > 0;
#else
  static pbfw::SocketCore core(g_hal, g_storage, g_offline, cfg, g_records, PBFW_RECORDS);
#endif
  core.boot();
#if PBFW_HAVE_ESP_AT
  if (link_configured) esp.start(millis());
#endif

  Button button;
  uint64_t next_tick = 0;
  for (;;) {
    RxByte rx;
    if (g_meter_uart.rx().take_overflow()) core.on_meter_byte(0, true);  // bytes were lost: resync
    while (g_meter_uart.rx().pop(rx)) core.on_meter_byte(rx.value, rx.error);
#if PBFW_HAVE_ESP_AT
    while (g_esp_uart.rx().pop(rx)) esp.on_uart_byte(rx.value);
#else
    while (g_esp_uart.rx().pop(rx)) {
    }
#endif
    const uint64_t now = millis();
    if (button.poll(now)) core.button_click();
    if (now >= next_tick) {
      next_tick = now + 10;
#if PBFW_HAVE_ESP_AT
      esp.tick(now);
#endif
      core.tick();
      watchdog_feed();
    }
    wait_for_interrupt();  // SysTick wakes us every millisecond at the latest
  }
}
