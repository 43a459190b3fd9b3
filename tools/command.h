#pragma once
// The vditkit command's subcommands register themselves here; main() dispatches on the first
// argument. A subcommand parses its own options (Boost.Program_options) and calls the library.
#include <boost/program_options.hpp>
#include <functional>
#include <string>
#include <vector>

namespace vdit::cli {

namespace po = boost::program_options;

struct Command {
  std::string name;
  std::string summary;
  std::function<int(int argc, char** argv)> run;  // argv[0] is the subcommand's name
};

std::vector<Command>& commands();

struct RegisterCommand {
  RegisterCommand(std::string name, std::string summary, std::function<int(int, char**)> run);
};

// Thrown for a command line that does not parse; main prints the usage line with it.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parses `argv` against `options` (plus --help, which prints `usage` and the options and
// returns an empty map: the caller then returns 0).
po::variables_map parse_options(int argc, char** argv, const std::string& usage,
                                const po::options_description& options,
                                const po::positional_options_description& positional = {});

// A --size HxW value (frames or latents).
struct FrameSize {
  int64_t height = 0, width = 0;
};
// UsageError unless `text` is HxW with positive H and W.
FrameSize parse_size(const std::string& text);

}  // namespace vdit::cli
