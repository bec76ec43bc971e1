// The socket firmware image: wires the portable core (pbfw::SocketCore) to the STM32G0 drivers.
// Interrupts only move bytes (UART RX -> ring) and count milliseconds; everything else runs in this loop.
#include <pbfw/device_info.hpp>
#include <pbfw/esp_at.hpp>
#include <pbfw/socket_core.hpp>
#include <stm32g0/board.hpp>
#include <stm32g0/drivers.hpp>
#include <stm32g0/layout.hpp>

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
  // Button held 5 s and released: ESP-Touch in the modem. The driver has its own timeout and reconnects
  // afterwards; the core's own timeout only ends the LED pattern.
  void start_provisioning() override {
    if (esp_ != nullptr) esp_->start_smartconfig(millis());
  }
  void attach(pbfw::EspAt* esp) { esp_ = esp; }

 private:
  pbfw::EspAt* esp_ = nullptr;
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

// Unprovisioned units name themselves after the 96-bit unique device ID (shown in logs, never joins).
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
  void on_smartconfig_done(bool /*ok*/) override { core_->provisioning_done(); }

 private:
  pbfw::SocketCore* core_ = nullptr;
};
Link g_link;

void board_init() {
  clock_init();
  systick_init();
  gpio_clocks_on();
  set_bits(reg(kRccBase, rcc::APBENR1), rcc::APBENR1_USART2);
  set_bits(reg(kRccBase, rcc::APBENR2), rcc::APBENR2_USART1 | rcc::APBENR2_SYSCFG);

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

  // Identity, gateway and calibration defaults from the device-information page. Without a valid page the
  // socket never joins (it has no PSK) but still works locally: relay, button, metering, protection.
  static pbfw::DeviceInfo info{};
  const pbfw::DeviceInfoStatus devinfo = pbfw::decode_device_info(
      reinterpret_cast<const uint8_t*>(kLayout.devinfo_start), kLayout.devinfo_size, info);
  const bool provisioned = devinfo == pbfw::DeviceInfoStatus::Ok;
  if (!provisioned) make_cid();

  // The big objects are static so they count in the linker's RAM budget instead of hiding on the stack.
  static pbfw::SocketConfig cfg{.cid = provisioned ? info.cid : g_cid, .fw_version = PBFW_FW_VERSION};
  if (provisioned) cfg.kv_e6 = info.kv_e6, cfg.ki_e6 = info.ki_e6;
  cfg.provisioned = provisioned;  // the LED flashes purple instead of "connecting" forever
  static pbfw::EspAtConfig esp_cfg;
  esp_cfg.cid = cfg.cid;
  esp_cfg.host = info.gateway_host;
  esp_cfg.port = info.gateway_port;
  esp_cfg.psk = info.psk;
  esp_cfg.psk_len = info.psk_len;
  esp_cfg.seed = *reinterpret_cast<const volatile uint32_t*>(kUidBase) ^ static_cast<uint32_t>(millis());
  static pbfw::EspAt esp(g_esp_port, g_link, esp_cfg);
  static pbfw::SocketCore core(g_hal, g_storage, esp, cfg, g_records, PBFW_RECORDS);
  g_link.attach(&core);
  g_hal.attach(&esp);
  core.boot();
  if (provisioned) esp.start(millis());

  uint64_t next_tick = 0;
  for (;;) {
    RxByte rx;
    if (g_meter_uart.rx().take_overflow()) core.on_meter_byte(0, true);  // bytes were lost: resync
    while (g_meter_uart.rx().pop(rx)) core.on_meter_byte(rx.value, rx.error);
    while (g_esp_uart.rx().pop(rx)) esp.on_uart_byte(rx.value);
    const uint64_t now = millis();
    core.button(!pin_read(board::kButton));  // pressed = low; the core debounces and times holds
    if (now >= next_tick) {
      next_tick = now + 10;
      esp.tick(now);
      core.tick();
      watchdog_feed();
    }
    wait_for_interrupt();  // SysTick wakes us every millisecond at the latest
  }
}
