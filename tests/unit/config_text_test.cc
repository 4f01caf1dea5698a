// The small pieces under the configuration: ${VAR} expansion and spelling suggestions.
#include <gtest/gtest.h>

#include <cstdlib>

#include "io/closest_name.h"
#include "io/env_expand.h"

namespace xcomp {
namespace {

TEST(EnvExpand, ExpandsSetVariablesAndDefaults) {
  setenv("XCOMP_EXPAND_A", "alpha", 1);
  setenv("XCOMP_EXPAND_EMPTY", "", 1);
  unsetenv("XCOMP_EXPAND_UNSET");
  EXPECT_EQ(expand_env_vars("x/${XCOMP_EXPAND_A}/y").value, "x/alpha/y");
  EXPECT_EQ(expand_env_vars("${XCOMP_EXPAND_UNSET:-d/e}").value, "d/e");
  EXPECT_EQ(expand_env_vars("${XCOMP_EXPAND_EMPTY:-d}").value, "d");
  EXPECT_EQ(expand_env_vars("${XCOMP_EXPAND_EMPTY}").value, "");
  EXPECT_EQ(expand_env_vars("${XCOMP_EXPAND_UNSET:-}").value, "");
  EXPECT_EQ(expand_env_vars("${XCOMP_EXPAND_A:-unused}").value, "alpha");
  EXPECT_EQ(expand_env_vars("$$ $x $ {} end$").value, "$ $x $ {} end$");
  unsetenv("XCOMP_EXPAND_A");
  unsetenv("XCOMP_EXPAND_EMPTY");
}

TEST(EnvExpand, DefaultsMayHoldReferencesExpandedOnlyWhenUsed) {
  setenv("XCOMP_EXPAND_A", "alpha", 1);
  unsetenv("XCOMP_EXPAND_UNSET");
  // The shipped configs write the model path this way.
  EXPECT_EQ(expand_env_vars("${XCOMP_EXPAND_UNSET:-${XCOMP_EXPAND_A}/m}/f.gguf").value, "alpha/m/f.gguf");
  EXPECT_EQ(expand_env_vars("${XCOMP_EXPAND_UNSET:-${XCOMP_EXPAND_UNSET:-x}y}z").value, "xyz");
  EXPECT_EQ(expand_env_vars("${XCOMP_EXPAND_UNSET:-a$$b}").value, "a$b");
  // An unused default is not expanded, so its unset variable is no error.
  const EnvExpansion used = expand_env_vars("${XCOMP_EXPAND_A:-${XCOMP_EXPAND_UNSET}}");
  EXPECT_EQ(used.error, "");
  EXPECT_EQ(used.value, "alpha");
  EXPECT_NE(expand_env_vars("${XCOMP_EXPAND_UNSET:-${XCOMP_EXPAND_UNSET}}").error.find("XCOMP_EXPAND_UNSET is not set"),
            std::string::npos);
  EXPECT_NE(expand_env_vars("${XCOMP_EXPAND_UNSET:-${HOME}").error.find("unterminated"), std::string::npos);
  unsetenv("XCOMP_EXPAND_A");
}

TEST(EnvExpand, ReportsUnsetUnterminatedAndMalformedReferences) {
  unsetenv("XCOMP_EXPAND_UNSET");
  EXPECT_NE(expand_env_vars("a${XCOMP_EXPAND_UNSET}b").error.find("XCOMP_EXPAND_UNSET is not set"), std::string::npos);
  EXPECT_NE(expand_env_vars("a${HOME").error.find("unterminated"), std::string::npos);
  EXPECT_NE(expand_env_vars("${1X}").error.find("not a variable reference"), std::string::npos);
  EXPECT_NE(expand_env_vars("${}").error.find("not a variable reference"), std::string::npos);
}

TEST(EnvExpand, EscapingRoundTrips) {
  for (const std::string s : {"plain", "$", "$$", "${HOME}", "a$b${c:-d}$"})
    EXPECT_EQ(expand_env_vars(escape_env_vars(s)).value, s) << s;
}

TEST(ClosestName, EditDistanceCountsASwapAsOneEdit) {
  EXPECT_EQ(edit_distance("steps", "steps"), 0u);
  EXPECT_EQ(edit_distance("stpes", "steps"), 1u);
  EXPECT_EQ(edit_distance("step", "steps"), 1u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(ClosestName, SuggestsOnlyPlausibleTypos) {
  const std::vector<std::string> names = {"kv", "embedding"};
  EXPECT_EQ(closest_name("kvv", names), "kv");
  EXPECT_EQ(closest_name("embeding", names), "embedding");
  EXPECT_EQ(closest_name("x", names), "");
  EXPECT_EQ(closest_name("regeneration", names), "");
}

}  // namespace
}  // namespace xcomp
