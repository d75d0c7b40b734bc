#pragma once
// Where tests find the real model and the committed golden files.
// The model path comes from PAGODA_MODEL (scripts/test.sh sets it after fetching the model). When it
// is unset a model test skips, unless PAGODA_REQUIRE_MODEL=1 (set by CI), where that is a failure.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace pagoda::test {

inline std::string data_path(const std::string& name) { return std::string(PAGODA_TEST_DATA_DIR) + "/" + name; }

inline std::string model_path() {
  const char* p = std::getenv("PAGODA_MODEL");
  return p ? std::string(p) : std::string();
}

inline bool model_required() {
  const char* r = std::getenv("PAGODA_REQUIRE_MODEL");
  return r && std::string(r) == "1";
}

}  // namespace pagoda::test

// Use at the top of a test that needs the real model.
#define PAGODA_REQUIRE_MODEL_OR_SKIP()                                                    \
  do {                                                                                    \
    if (::pagoda::test::model_path().empty()) {                                           \
      if (::pagoda::test::model_required()) FAIL() << "PAGODA_MODEL is not set";          \
      GTEST_SKIP() << "PAGODA_MODEL is not set; run scripts/test.sh to fetch the model";  \
    }                                                                                     \
  } while (0)
