// Pin assignment of the socket board (our choice for the reference parts; change here for another PCB).
#pragma once

#include <stm32g0/drivers.hpp>

namespace stm32g0::board {

// ESP-12F (ESP-AT firmware) on USART1: PA9 TX -> ESP RX, PA10 RX <- ESP TX (AF1), 115200 8N1.
inline constexpr Pin kEspTx{kGpioABase, 9}, kEspRx{kGpioABase, 10};
inline constexpr uint8_t kEspAf = 1;
inline constexpr Pin kEspEnable{kGpioABase, 8};  // CH_PD/EN: high = running
// HLW8032 TX -> PA3 USART2 RX (AF1), 4800 8E1, receive only.
inline constexpr Pin kMeterRx{kGpioABase, 3};
inline constexpr uint8_t kMeterAf = 1;
// Relay driver transistor (high = contact closed), push button to GND (internal pull-up), WS2812 data in.
inline constexpr Pin kRelay{kGpioBBase, 0};
inline constexpr Pin kButton{kGpioBBase, 1};
inline constexpr Pin kLed{kGpioABase, 7};

}  // namespace stm32g0::board
