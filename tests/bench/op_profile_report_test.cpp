// Op profiles in the benchmarks (bench/op_profile_report.h): sums over runs, the shares line and JSON;
// and `pagoda bench single --profile-ops` (run_single) splitting a tiny model's prefill steps from its
// decode steps.
#include "bench/op_profile_report.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "bench/single_workload.h"
#include "engine/loaded_model.h"
#include "engine/model/random_model.h"

namespace pagoda::bench {
namespace {

engine::OpProfile profile(int64_t steps, double a, double b, double c) {
  return {steps, {{"attention", a}, {"ffn", b}, {"moe_routing", c}}};
}

TEST(OpProfileReport, SumsKindByKindAndReportsShares) {
  engine::OpProfile sum;
  add_profile(sum, profile(2, 0.1, 0.3, 0.0));
  add_profile(sum, profile(3, 0.2, 0.4, 0.0));
  EXPECT_EQ(sum.steps, 5);
  ASSERT_EQ(sum.seconds.size(), 3u);
  EXPECT_DOUBLE_EQ(sum.seconds[0].second, 0.1 + 0.2);
  EXPECT_DOUBLE_EQ(sum.seconds[1].second, 0.3 + 0.4);
  EXPECT_DOUBLE_EQ(profile_total_s(sum), 0.1 + 0.2 + 0.3 + 0.4);
  // 1 s over 5 steps; kinds that took no time are left out of the line.
  EXPECT_EQ(profile_text(sum), "5 steps, 200.0 ms/step: attention 30.0% ffn 70.0%");
  const nlohmann::json j = profile_json(sum);
  EXPECT_EQ(j.at("steps"), 5);
  EXPECT_DOUBLE_EQ(j.at("kinds").at("ffn").at("share").get<double>(), 0.7);
  EXPECT_DOUBLE_EQ(j.at("kinds").at("moe_routing").at("seconds").get<double>(), 0.0);
  // A backend that does not profile reports nothing, and adds nothing.
  add_profile(sum, engine::OpProfile{});
  EXPECT_EQ(sum.steps, 5);
}

TEST(OpProfileReport, SingleSplitsPrefillStepsFromDecodeSteps) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("op_profile_single_" + std::to_string(getpid()) + ".gguf")).string();
  ASSERT_TRUE(engine::write_random_llama(*engine::random_model_preset("tiny"), path).ok());
  engine::LoadOptions lo;
  lo.kv_tokens = 64;
  lo.backend.cpu.profile_ops = true;
  auto m = engine::load_model(path, lo);
  std::filesystem::remove(path);
  ASSERT_TRUE(m.ok()) << m.message();
  SingleOptions o;
  o.prompt_tokens = 16, o.gen_tokens = 8, o.repeats = 2, o.profile_ops = true;
  auto r = run_single(m.value(), o);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r.value().prefill_profile.steps, 2) << "one prompt step per counted repeat, the warm-up left out";
  EXPECT_EQ(r.value().decode_profile.steps, 16);
  EXPECT_GT(profile_total_s(r.value().decode_profile), 0.0);
  const nlohmann::json j = nlohmann::json::parse(r.value().to_json(o, path));
  EXPECT_EQ(j.at("op_profile").at("decode").at("steps"), 16);
  EXPECT_NE(r.value().to_text().find("decode  16 steps"), std::string::npos) << r.value().to_text();
}

}  // namespace
}  // namespace pagoda::bench
