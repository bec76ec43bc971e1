// Replays fuzz inputs without libFuzzer: every file of the directories (or files) given, in name
// order, goes once through LLVMFuzzerTestOneInput. A missing directory is skipped (a target without
// kept crash inputs has no regressions/ directory); no input at all is an error. A failing input
// aborts, like under libFuzzer, after its path was printed.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz_check.hpp"

namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg(argv[i]);
    if (fs::is_regular_file(arg)) {
      inputs.push_back(arg);
    } else if (fs::is_directory(arg)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(arg)) {
        // Hidden files (.gitkeep, editor droppings) are not inputs.
        if (e.is_regular_file() && e.path().filename().string().front() != '.') files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());
      inputs.insert(inputs.end(), files.begin(), files.end());
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "no fuzz inputs found\n");
    return 1;
  }
  for (const fs::path& p : inputs) {
    std::fprintf(stderr, "replay %s\n", p.c_str());
    const std::vector<uint8_t> data = read_all(p);
    LLVMFuzzerTestOneInput(data.data(), data.size());
  }
  std::printf("replayed %zu inputs\n", inputs.size());
  return 0;
}
