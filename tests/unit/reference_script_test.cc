// run_reference_script: a reference script's last line of output is its JSON result;
// a failed run or a last line that is no JSON object is an input error carrying the
// script's name and output.
#include <gtest/gtest.h>

#include <string>

#include "model/input_error.h"
#include "trainer/reference_script.h"

namespace xcomp {
namespace {

TEST(ReferenceScript, ReturnsTheJsonOnTheLastLine) {
  const nlohmann::json j = run_reference_script("printf 'warming up\\n{\"x\": 1}\\n\\n{\"step_s\": 0.5}\\n'", "s.py");
  EXPECT_EQ(j.value("step_s", 0.0), 0.5);
  EXPECT_FALSE(j.contains("x"));
}

TEST(ReferenceScript, AFailedRunOrAMissingResultNamesTheScriptAndShowsItsOutput) {
  try {
    run_reference_script("echo 'No module named torch'; exit 1", "torch_reference.py");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("torch_reference.py"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No module named torch"), std::string::npos) << e.what();
  }
  try {
    run_reference_script("echo '{\"cut off'", "torch_reference.py");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("torch_reference.py"), std::string::npos) << e.what();
  }
}

TEST(ReferenceScript, ShellQuotingKeepsQuotesAndSpaces) {
  const nlohmann::json j =
      run_reference_script("printf '%s\\n' " + shell_quote("{\"path\": \"it's a dir\"}"), "s.py");
  EXPECT_EQ(j.value("path", std::string()), "it's a dir");
}

}  // namespace
}  // namespace xcomp
