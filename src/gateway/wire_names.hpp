// Text forms of the LAN protocol's enums as the gateway stores them in events.
#pragma once

#include <pbfw/proto.hpp>

namespace pb::gateway {

const char* cause_name(pbfw::proto::Cause c);
const char* event_kind(pbfw::proto::EventType t);

}  // namespace pb::gateway
