// The family registry (engine/model/architecture.h): what a GGUF's general.architecture may name, and
// the layer ops each family brings to the backends.
#include "engine/model/architecture.h"

#include <gtest/gtest.h>

#include "engine/model/model_weights.h"
#include "engine/model/random_model.h"

namespace pagoda::engine {
namespace {

TEST(Architecture, RegisteredFamiliesAndTheirOps) {
  for (const char* name : {"llama", "mistral"}) {
    const Architecture* a = find_architecture(name);
    ASSERT_NE(a, nullptr) << name;
    EXPECT_STREQ(a->name, name);
    EXPECT_EQ(a->ops.rope, RopeStyle::Interleaved) << name;
  }
  EXPECT_EQ(find_architecture("gpt2"), nullptr);
  EXPECT_EQ(find_architecture(""), nullptr);
  EXPECT_EQ(find_architecture("Llama"), nullptr) << "names are matched exactly, as ggml does";
  EXPECT_EQ(architecture_names(), "llama, mistral");
}

TEST(Architecture, TheLoadedConfigCarriesTheFamilysOps) {
  auto w = random_llama_writer(*random_model_preset("tiny"));
  ASSERT_TRUE(w.ok()) << w.message();
  auto bytes = w.value().to_bytes();
  ASSERT_TRUE(bytes.ok());
  auto f = GgufFile::parse(bytes.value(), "tiny.gguf");
  ASSERT_TRUE(f.ok());
  auto c = model_config_from_gguf(*f.value());
  ASSERT_TRUE(c.ok()) << c.message();
  EXPECT_EQ(c.value().architecture, "llama");
  EXPECT_EQ(c.value().ops.rope, RopeStyle::Interleaved);

  w.value().set_string("general.architecture", "qwen3moe");
  auto other = w.value().to_bytes();
  ASSERT_TRUE(other.ok());
  auto g = GgufFile::parse(other.value(), "moe.gguf");
  ASSERT_TRUE(g.ok());
  auto bad = model_config_from_gguf(*g.value());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("unsupported architecture 'qwen3moe' (supported: llama, mistral)"), std::string::npos)
      << bad.message();
}

}  // namespace
}  // namespace pagoda::engine
