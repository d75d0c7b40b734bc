#pragma once
// The prompts (token ids) of tests/data/forward_golden.json, in file order: real text tokenized by
// llama.cpp, of different lengths, for tests that run many requests through the engine loop.
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "tests/test_env.h"

namespace pagoda::test {

inline std::vector<std::vector<int32_t>> golden_prompts() {
  std::ifstream in(data_path("forward_golden.json"));
  const nlohmann::json j = nlohmann::json::parse(in);
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& c : j.at("cases")) {
    auto tokens = c.at("tokens").get<std::vector<int32_t>>();
    tokens.resize(c.at("n_prompt").get<size_t>());
    prompts.push_back(std::move(tokens));
  }
  return prompts;
}

}  // namespace pagoda::test
