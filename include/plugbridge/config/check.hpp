// What `plugbridged --check-config` says beyond parsing: a one-line summary of what was loaded, and
// whether the files the configuration names can be used by the user the service runs as.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "plugbridge/config/config.hpp"

namespace pb::config {

// A user as the kernel checks permissions: uid and every group.
struct Account {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // primary and supplementary
};

// The user named (getpwnam + getgrouplist), nullopt if there is none.
std::optional<Account> find_account(const std::string& name);
// This process's effective user and groups.
Account current_account();

// "FILE: OK: 3 sockets, uplink host:port as USER (gateway GW), database DB, LAN ADDR:PORT, control socket
// PATH"
std::string summary(const Config& cfg);

// One line per problem, each with the path, why, and the fix: the uplink CA file missing or not
// readable by `who`, the database's directory missing or not writable, the database file not
// readable and writable. Empty when all is well.
std::vector<std::string> check_files(const Config& cfg, const Account& who);

}  // namespace pb::config
