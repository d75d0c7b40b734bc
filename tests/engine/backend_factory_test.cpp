// engine/backend_factory.cpp: the KV shape every backend checks alike, and choosing a backend by kind.
#include <gtest/gtest.h>

#include "engine/backend.h"

namespace pagoda::engine {
namespace {

TEST(CheckKvShape, AcceptsAValidPoolOfASupportedDtype) {
  constexpr KvDtype f16[] = {KvDtype::F16};
  EXPECT_TRUE(check_kv_shape({4, 16, KvDtype::F16}, f16).ok());
  EXPECT_EQ(kv_dtype_bytes(KvDtype::F16), 2);
}

TEST(CheckKvShape, RefusesEmptyPoolsOddBlockSizesAndUnsupportedDtypes) {
  constexpr KvDtype f16[] = {KvDtype::F16};
  EXPECT_FALSE(check_kv_shape({0, 16, KvDtype::F16}, f16).ok());
  EXPECT_FALSE(check_kv_shape({4, 0, KvDtype::F16}, f16).ok());
  EXPECT_FALSE(check_kv_shape({4, 2048, KvDtype::F16}, f16).ok());
  const Status s = check_kv_shape({4, 16, KvDtype::F16}, {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("f16"), std::string::npos) << s.message();
}

TEST(MakeBackend, CpuIsAlwaysThereAndAutoNamesWhyItChose) {
  BackendOptions o;
  o.kind = BackendKind::Cpu;
  auto b = make_backend(o);
  ASSERT_TRUE(b.ok()) << b.message();
  EXPECT_EQ(b.value()->name(), "cpu");
  std::string why;
  const BackendKind k = resolve_backend_kind(BackendKind::Auto, &why);
  EXPECT_NE(k, BackendKind::Auto);
  EXPECT_FALSE(why.empty());
  if (!cuda_backend_built()) {
    o.kind = BackendKind::Cuda;
    auto c = make_backend(o);
    ASSERT_FALSE(c.ok());
    EXPECT_NE(c.message().find("cuda"), std::string::npos) << c.message();
  }
}

}  // namespace
}  // namespace pagoda::engine
