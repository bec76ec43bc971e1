// One class per subcommand (cmd_*.cpp): add() declares its options, run() does the work.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "context.hpp"

namespace pb::cli {

class Command {
 public:
  virtual ~Command() = default;
  virtual CLI::App* add(CLI::App& app) = 0;
  virtual int run(Context& ctx) = 0;
};

std::unique_ptr<Command> make_devices();
std::unique_ptr<Command> make_energy();
std::unique_ptr<Command> make_history();
std::unique_ptr<Command> make_events();
std::unique_ptr<Command> make_relay();
std::unique_ptr<Command> make_countdown();
std::unique_ptr<Command> make_calibrate();
std::unique_ptr<Command> make_export();
std::unique_ptr<Command> make_provision();
std::unique_ptr<Command> make_reload();
std::unique_ptr<Command> make_db();
std::unique_ptr<Command> make_status();

// A text table (columns padded, numbers right-aligned) that also prints as CSV.
struct Table {
  struct Column {
    std::string title;  // table header
    std::string csv;    // CSV header
    bool right = false;
  };
  std::vector<Column> columns;
  std::vector<std::vector<std::string>> rows;

  void print(std::ostream& out) const;
  void print_csv(std::ostream& out) const;
};

// Adds --format table|csv|json (default table) to a subcommand.
void add_format_option(CLI::App* sub, std::string& format, bool with_csv = true);

}  // namespace pb::cli
