#include "tests/test_support.h"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "model/input_error.h"

namespace xcomp::test {
namespace fs = std::filesystem;

namespace {
std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::vector<std::string>& temp_dirs() {
  static std::vector<std::string> dirs;
  return dirs;
}

void remove_temp_dirs() {
  for (const auto& d : temp_dirs()) {
    std::error_code ec;
    fs::remove_all(d, ec);
  }
}
}  // namespace

std::string fixtures_dir() { return env_or("XCOMP_FIXTURES", XCOMP_DEFAULT_FIXTURES); }
std::string fixture(const std::string& relative) { return fixtures_dir() + "/" + relative; }
std::string source_dir() { return env_or("XCOMP_SOURCE_DIR", XCOMP_DEFAULT_SOURCE_DIR); }
std::string models_dir() { return env_or("XCOMP_MODELS", env_or("HOME", "/root") + "/.cache/xcomp"); }

std::string temp_dir(const std::string& tag) {
  static std::once_flag registered;
  std::call_once(registered, [] {
    temp_dirs();  // construct the list first, so it is destroyed after the atexit handler runs
    std::atexit(remove_temp_dirs);
  });
  std::string pattern = (fs::temp_directory_path() / ("xcomp-test-" + tag + "-XXXXXX")).string();
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
  temp_dirs().emplace_back(buf.data());
  return temp_dirs().back();
}

std::string input_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InputError";
  return "";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string xcomp_binary() { return env_or("XCOMP_BINARY", XCOMP_DEFAULT_BINARY); }

CommandResult run_command(const std::string& command_line) {
  std::string dir = temp_dir("run");
  std::string out_path = dir + "/stdout", err_path = dir + "/stderr";
  // The braces make the redirections apply to the whole line, a pipeline or list too.
  std::string command = "{ " + command_line + "\n} >'" + out_path + "' 2>'" + err_path + "' </dev/null";
  int status = std::system(command.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

CommandResult run_xcomp(const std::string& args) { return run_command("'" + xcomp_binary() + "' " + args); }

}  // namespace xcomp::test
