// API keys (server/api_keys.h): what a key file may hold, the Bearer scheme, and the comparison.
#include "server/api_keys.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace pagoda::server {
namespace {

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

TEST(ApiKeys, ConstantTimeEqualIsEquality) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcabc"));  // the shorter one repeated is not equal
  EXPECT_FALSE(constant_time_equal("abc", ""));
  EXPECT_FALSE(constant_time_equal("", "x"));
}

TEST(ApiKeys, BearerSchemeAndEveryKeyIsTried) {
  auto keys = ApiKeys::load({"key-one", " key-two "}, write_file("keys_ok.txt", "# comment\n\n  key-three\r\n"));
  ASSERT_TRUE(keys.ok()) << keys.message();
  const ApiKeys& k = *keys.value();
  EXPECT_TRUE(k.enabled());
  EXPECT_EQ(k.size(), 3u);
  for (const char* ok : {"Bearer key-one", "bearer key-two", "BEARER   key-three ", "Bearer key-one\t"}) {
    EXPECT_TRUE(k.accepts_authorization(ok)) << ok;
  }
  for (const char* bad : {"", "Bearer", "Bearer ", "key-one", "Basic key-one", "Bearer key-on", "Bearer key-one2",
                          "Bearer # comment", "Bearerkey-one"}) {
    EXPECT_FALSE(k.accepts_authorization(bad)) << bad;
  }
  EXPECT_FALSE(ApiKeys({}).enabled());
}

TEST(ApiKeys, BadKeysAndFilesAreErrorsThatSayWhat) {
  auto missing = ApiKeys::load({}, ::testing::TempDir() + "no_such_keys.txt");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("cannot read"), std::string::npos) << missing.message();
  auto empty = ApiKeys::load({}, write_file("keys_empty.txt", "# only a comment\n\n"));
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.message().find("no key"), std::string::npos) << empty.message();
  auto spaced = ApiKeys::load({}, write_file("keys_spaced.txt", "fine\nnot fine\n"));
  ASSERT_FALSE(spaced.ok());
  EXPECT_NE(spaced.message().find("line 2"), std::string::npos) << spaced.message();
  EXPECT_FALSE(ApiKeys::load({"a b"}, "").ok());
  EXPECT_FALSE(ApiKeys::load({"  "}, "").ok());
  EXPECT_FALSE(ApiKeys::load({"tab\there"}, "").ok());
  EXPECT_FALSE(ApiKeys::load({"caf\xc3\xa9"}, "").ok()) << "non-ASCII bytes, whatever char's signedness";
  auto bom = ApiKeys::load({}, write_file("keys_bom.txt", "\xEF\xBB\xBF" "bom-key\r\n"));
  ASSERT_TRUE(bom.ok()) << bom.message();
  EXPECT_TRUE(bom.value()->accepts("bom-key")) << "a UTF-8 BOM is not part of the first key";
  auto unset = ApiKeys::load({}, "", /*file_given=*/true);
  ASSERT_FALSE(unset.ok());
  EXPECT_NE(unset.message().find("empty"), std::string::npos) << unset.message();
  auto none = ApiKeys::load({}, "");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none.value()->enabled());
}

}  // namespace
}  // namespace pagoda::server
