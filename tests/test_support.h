// What every test suite shares: where the fixtures and the source tree are, and a way
// to run the xcomp binary.
#pragma once

#include <functional>
#include <string>

namespace xcomp::test {

// XCOMP_FIXTURES, or ../shared/fixtures beside the checkout.
std::string fixtures_dir();
std::string fixture(const std::string& relative);
// The checkout (for committed reference data under tests/reference/).
std::string source_dir();
// XCOMP_MODELS, or ~/.cache/xcomp: where launch/setup.sh puts downloaded models.
std::string models_dir();
// A fresh empty directory under the system temp dir, removed at process exit.
std::string temp_dir(const std::string& tag);

struct CommandResult {
  int exit_code;
  std::string out;  // standard output
  std::string err;  // standard error
};
// The built xcomp binary (XCOMP_BINARY overrides it), for tests that start it themselves.
std::string xcomp_binary();
// Runs a shell command line (quoted by the caller), its input empty, and collects both
// output streams.
CommandResult run_command(const std::string& command_line);
// Runs the built xcomp binary with the given arguments (shell-quoted by the caller).
CommandResult run_xcomp(const std::string& args);

// The message of the InputError that fn throws; fails the test when it throws none.
std::string input_error(const std::function<void()>& fn);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

}  // namespace xcomp::test
