#include <algorithm>

#include "commands.hpp"

namespace pb::cli {

void Table::print(std::ostream& out) const {
  std::vector<size_t> w(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) w[c] = display_width(columns[c].title);
  for (const auto& r : rows)
    for (size_t c = 0; c < columns.size() && c < r.size(); ++c) w[c] = std::max(w[c], display_width(r[c]));
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t c = 0; c < columns.size(); ++c) {
      const std::string& v = c < cells.size() ? cells[c] : std::string();
      if (c) s += "  ";
      s += columns[c].right ? pad_left(v, w[c]) : (c + 1 == columns.size() ? v : pad_right(v, w[c]));
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    out << s << '\n';
  };
  std::vector<std::string> head;
  for (const auto& col : columns) head.push_back(col.title);
  line(head);
  for (const auto& r : rows) line(r);
}

void Table::print_csv(std::ostream& out) const {
  for (size_t c = 0; c < columns.size(); ++c) out << (c ? "," : "") << csv_field(columns[c].csv);
  out << '\n';
  for (const auto& r : rows) {
    for (size_t c = 0; c < columns.size(); ++c) out << (c ? "," : "") << csv_field(c < r.size() ? r[c] : "");
    out << '\n';
  }
}

void add_format_option(CLI::App* sub, std::string& format, bool with_csv) {
  sub->add_option("--format", format, with_csv ? "table, csv or json" : "table or json")
      ->capture_default_str()
      ->check(with_csv ? CLI::IsMember({"table", "csv", "json"}) : CLI::IsMember({"table", "json"}));
}

}  // namespace pb::cli
