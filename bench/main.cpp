// vditkit-bench: prints one `name: value` line per figure. With no arguments every section
// runs; otherwise only the sections named (`vditkit-bench autograd`). `--list` lists them.
// Every run starts with the machine's description (report_machine).
#include <cstring>
#include <iostream>
#include <set>
#include <string>

#include "autograd/check.h"
#include "bench/harness.h"

int main(int argc, char** argv) {
  std::set<std::string> wanted;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--list") == 0 || std::strcmp(argv[i], "--help") == 0) {
      std::cout << "usage: vditkit-bench [SECTION...]\nsections:\n";
      for (const auto& s : vdit::bench::sections()) std::cout << "  " << s.name << "  " << s.description << "\n";
      return 0;
    }
    wanted.insert(argv[i]);
  }
  try {
    vdit::bench::report_machine();
    for (const auto& s : vdit::bench::sections())
      if (wanted.empty() || wanted.count(s.name)) s.run();
  } catch (const std::exception& e) {
    std::cerr << "vditkit-bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
