#include "plugbridge/config/check.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace pb::config {

namespace fs = std::filesystem;

std::optional<Account> find_account(const std::string& name) {
  errno = 0;
  const passwd* pw = ::getpwnam(name.c_str());
  if (!pw) return std::nullopt;
  Account a;
  a.name = pw->pw_name;
  a.uid = pw->pw_uid;
  a.gid = pw->pw_gid;
  int n = 64;
  std::vector<gid_t> groups(static_cast<size_t>(n));
  while (::getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &n) < 0)
    groups.resize(static_cast<size_t>(n));
  groups.resize(static_cast<size_t>(n));
  a.groups = std::move(groups);
  return a;
}

Account current_account() {
  Account a;
  a.uid = ::geteuid();
  a.gid = ::getegid();
  if (const passwd* pw = ::getpwuid(a.uid)) a.name = pw->pw_name;
  if (a.name.empty()) a.name = "uid " + std::to_string(a.uid);
  const int n = ::getgroups(0, nullptr);
  if (n > 0) {
    a.groups.resize(static_cast<size_t>(n));
    a.groups.resize(static_cast<size_t>(std::max(0, ::getgroups(n, a.groups.data()))));
  }
  a.groups.push_back(a.gid);
  return a;
}

std::string summary(const Config& cfg) {
  std::string s = cfg.source_file + ": OK: " + std::to_string(cfg.sockets.size()) +
                  (cfg.sockets.size() == 1 ? " socket" : " sockets") + ", ";
  if (cfg.uplink.enabled)
    s += "uplink " + cfg.uplink.host + ":" + std::to_string(cfg.uplink.port) + " as " + cfg.uplink.username +
         " (gateway " + cfg.gateway_id + ")";
  else
    s += "no Tuya uplink";
  for (const MqttUplink& m : cfg.mqtt_uplinks)
    s += ", uplink " + m.name + " mqtt" + (m.tls ? "s" : "") + "://" + m.host + ":" + std::to_string(m.port) +
         "/" + m.base_topic +
         (m.discovery ? " (Home Assistant discovery under " + m.discovery_prefix + ")" : "");
  for (const DeviceUplink& d : cfg.device_uplinks) {
    const auto n = std::count_if(cfg.sockets.begin(), cfg.sockets.end(), [&](const SocketEntry& e) {
      switch (d.platform) {
        case DeviceUplink::Platform::Aliyun:
          return e.aliyun.has_value();
        case DeviceUplink::Platform::Tencent:
          return e.tencent.has_value();
        case DeviceUplink::Platform::Mqtt:
          return true;  // every socket logs in on its own
      }
      return false;
    });
    s += std::string(", ") + to_string(d.platform) +
         (d.platform == DeviceUplink::Platform::Mqtt ? " per socket '" : " '") + d.name + "' (" +
         std::to_string(n) + (n == 1 ? " socket)" : " sockets)");
  }
  if (!cfg.uplink.enabled && cfg.mqtt_uplinks.empty() && cfg.device_uplinks.empty()) s += " (LAN only)";
  s += ", database " + cfg.database + ", LAN " + cfg.lan.listen_address + ":" + std::to_string(cfg.lan.port);
  s += cfg.control_socket.empty() ? ", no control socket" : ", control socket " + cfg.control_socket;
  if (cfg.metrics.enabled) s += ", metrics on http://" + cfg.metrics.listen + "/metrics";
  return s;
}

namespace {

std::string owner_text(const struct stat& st) {
  std::string u, g;
  if (const passwd* pw = ::getpwuid(st.st_uid)) u = pw->pw_name;
  if (const group* gr = ::getgrgid(st.st_gid)) g = gr->gr_name;
  if (u.empty()) u = std::to_string(st.st_uid);
  if (g.empty()) g = std::to_string(st.st_gid);
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return u + ":" + g + " " + mode;
}

std::string group_name(gid_t gid) {
  if (const group* gr = ::getgrgid(gid)) return gr->gr_name;
  return std::to_string(gid);
}

// The kernel's rule: the owner's bits for the owner, else the group's for a member, else the others'.
bool allowed(const Account& who, const struct stat& st, unsigned want /* 4 r, 2 w, 1 x */) {
  if (who.uid == 0) return (want & 1) == 0 || S_ISDIR(st.st_mode) || (st.st_mode & 0111) != 0;
  unsigned bits;
  if (st.st_uid == who.uid)
    bits = (st.st_mode >> 6) & 7;
  else if (std::find(who.groups.begin(), who.groups.end(), st.st_gid) != who.groups.end())
    bits = (st.st_mode >> 3) & 7;
  else
    bits = st.st_mode & 7;
  return (bits & want) == want;
}

// Every directory above `path` must be searchable; "" when they are.
std::string search_problem(const Account& who, const fs::path& path) {
  fs::path dir;
  for (const auto& part : path.parent_path()) {
    dir /= part;
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return dir.string() + ": " + std::strerror(errno);
    if (!allowed(who, st, 1))
      return dir.string() + " (" + owner_text(st) + ") cannot be entered by " + who.name +
             "; fix: chmod o+x " + dir.string() + ", or make " + who.name + " a member of its group";
  }
  return {};
}

}  // namespace

std::vector<std::string> check_files(const Config& cfg, const Account& who) {
  std::vector<std::string> problems;
  const std::string src = cfg.source_file + ": ";
  // A file the daemon reads: there, a regular file, readable by the service's user.
  auto readable = [&](const std::string& file, const std::string& key, const std::string& fix_missing) {
    const fs::path f = fs::absolute(file);
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) {
      problems.push_back(src + key + " " + f.string() + ": " + std::strerror(errno) +
                         "; fix: " + fix_missing);
    } else if (!S_ISREG(st.st_mode)) {
      problems.push_back(src + key + " " + f.string() + " is not a regular file");
    } else if (std::string p = search_problem(who, f); !p.empty()) {
      problems.push_back(src + key + ": " + p);
    } else if (!allowed(who, st, 4)) {
      problems.push_back(src + key + " " + f.string() + " (" + owner_text(st) + ") is not readable by " +
                         who.name + "; fix: chgrp " + group_name(who.gid) + " " + f.string() +
                         " && chmod 0640 " + f.string());
    }
  };
  if (cfg.uplink.enabled && !cfg.uplink.ca_file.empty())
    readable(cfg.uplink.ca_file, "uplink.ca_file",
             "copy the Tuya edge gateway's CA certificate there, or correct the path");
  for (const MqttUplink& m : cfg.mqtt_uplinks) {
    const std::string at = "uplinks." + m.name;
    if (!m.ca_file.empty())
      readable(m.ca_file, at + ".ca_file",
               "copy the CA that signed the broker's certificate there, or correct the path");
    if (!m.password_file.empty())
      readable(m.password_file, at + ".password_file",
               "write the broker password for " + m.username + " into it (one line), or correct the path");
  }
  for (const DeviceUplink& d : cfg.device_uplinks)
    if (!d.ca_file.empty())
      readable(d.ca_file, "uplinks." + d.name + ".ca_file",
               "copy the CA that signed the platform's certificate there, or correct the path (leave it out "
               "for the system's CAs)");
  if (cfg.database != ":memory:" && !cfg.database.empty()) {
    const fs::path db = fs::absolute(cfg.database);
    const fs::path dir = db.parent_path();
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      problems.push_back(src + "database: directory " + dir.string() + ": " + std::strerror(errno) +
                         "; fix: mkdir -p " + dir.string() + " && chown " + who.name + " " + dir.string());
    } else if (std::string p = search_problem(who, db); !p.empty()) {
      problems.push_back(src + "database: " + p);
    } else if (!allowed(who, st, 2 | 1)) {
      // SQLite creates the journal and WAL files next to the database.
      problems.push_back(src + "database: directory " + dir.string() + " (" + owner_text(st) +
                         ") is not writable by " + who.name + "; fix: chown " + who.name + " " +
                         dir.string());
    } else if (::stat(db.c_str(), &st) == 0 && !allowed(who, st, 4 | 2)) {
      problems.push_back(src + "database " + db.string() + " (" + owner_text(st) +
                         ") is not readable and writable by " + who.name + "; fix: chown " + who.name + " " +
                         db.string());
    }
  }
  return problems;
}

}  // namespace pb::config
