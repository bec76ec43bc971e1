// What a socket's frames become in the store: the row of a reading or of an event, stamped with its
// arrival time minus the age the socket gave it. Pure: the registry adds what the socket's state
// takes from a reading (apply_reading); the simulated year (tests/year) uses the same conversion.
#pragma once

#include <cstdint>
#include <pbfw/proto.hpp>
#include <string>

#include "plugbridge/store/store.hpp"

namespace pb::gateway {

// `now_ms`: unix ms of the frame's arrival; `boot`: the boot counter of the socket's Hello.
store::ReadingRow reading_row(const std::string& cid, uint32_t boot, const pbfw::proto::Reading& r,
                              int64_t now_ms);
// Kind and cause in their text forms; the cause as the detail's JSON.
store::EventRow event_row(const std::string& cid, uint32_t boot, const pbfw::proto::Event& e, int64_t now_ms);

}  // namespace pb::gateway
