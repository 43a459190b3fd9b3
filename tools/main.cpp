// vditkit: one command, many subcommands (DESIGN.md, "The command"). Errors from the library
// are reported here once, as one line naming the subcommand, with a non-zero exit.
#include <cstring>
#include <iostream>
#include <regex>

#include "autograd/blas.h"
#include "autograd/check.h"
#include "tools/command.h"

namespace vdit::cli {

std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}

RegisterCommand::RegisterCommand(std::string name, std::string summary,
                                 std::function<int(int, char**)> run) {
  commands().push_back({std::move(name), std::move(summary), std::move(run)});
}

po::variables_map parse_options(int argc, char** argv, const std::string& usage,
                                const po::options_description& options,
                                const po::positional_options_description& positional) {
  po::options_description all("Options");
  all.add_options()("help,h", "show this help");
  all.add(options);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: " << usage << "\n\n" << all << "\n";
      return {};
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(std::string(e.what()) + "\nusage: " + usage);
  }
  return vm;
}

FrameSize parse_size(const std::string& text) {
  std::smatch m;
  if (!std::regex_match(text, m, std::regex("(\\d{1,5})x(\\d{1,5})")) || std::stoll(m[1]) == 0 || std::stoll(m[2]) == 0)
    throw UsageError("--size must be HxW with positive H and W, e.g. 32x32; got '" + text + "'");
  return {std::stoll(m[1]), std::stoll(m[2])};
}

namespace {

void print_usage() {
  std::cout << "usage: vditkit <command> [options]   (vditkit <command> --help for its options)\n\n"
               "Retrains chosen layers of pretrained video diffusion transformers (Wan2.1) on the\n"
               "CPU and measures their attention.\n\ncommands:\n";
  for (const Command& c : commands()) std::cout << "  " << c.name << std::string(18 - std::min<size_t>(17, c.name.size()), ' ') << c.summary << "\n";
}

}  // namespace

}  // namespace vdit::cli

int main(int argc, char** argv) {
  using namespace vdit::cli;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::cout << "vditkit 0.1 (OpenBLAS " << vdit::blas::build() << ")\n";
    return 0;
  }
  for (const Command& c : commands()) {
    if (c.name != argv[1]) continue;
    try {
      return c.run(argc - 1, argv + 1);
    } catch (const UsageError& e) {
      std::cerr << "vditkit " << c.name << ": " << e.what() << "\n";
      return 2;
    } catch (const std::exception& e) {
      std::cerr << "vditkit " << c.name << ": error: " << e.what() << "\n";
      return 1;
    }
  }
  std::cerr << "vditkit: unknown command '" << argv[1] << "' (vditkit --help lists them)\n";
  return 2;
}
