#include "io/hdf5_check.h"

#include <vector>

#include "model/input_error.h"

namespace xcomp {

void quiet_hdf5_errors() {
  thread_local bool quiet = false;
  if (quiet) return;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  quiet = true;
}

namespace {
herr_t collect_description(unsigned /*n*/, const H5E_error2_t* error, void* out) {
  auto* descriptions = static_cast<std::vector<std::string>*>(out);
  descriptions->emplace_back(error->desc ? error->desc : "");
  return 0;
}
}  // namespace

std::string hdf5_error_description() {
  // Walking downward goes from the API call to the innermost cause; the innermost says
  // what is actually wrong, the outer ones how HDF5 got there.
  std::vector<std::string> descriptions;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_description, &descriptions);
  std::string text;
  for (auto it = descriptions.rbegin(); it != descriptions.rend(); ++it) {
    if (it->empty()) continue;
    if (!text.empty()) text += "; ";
    text += *it;
    if (text.size() > 300) break;  // the innermost few are the useful part
  }
  // Some reasons embed a ctime() string with its newline; keep the message on one line.
  for (char& c : text) {
    if (c == '\n') c = ' ';
  }
  return text.empty() ? "no reason given by HDF5" : text;
}

void throw_hdf5_input_error(const std::string& path, const char* call, const char* where) {
  throw_input_error(path, ": HDF5 call ", call, " failed (", where, "): ", hdf5_error_description());
}

}  // namespace xcomp
