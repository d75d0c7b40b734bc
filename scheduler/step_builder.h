#pragma once
// The step being planned (scheduler.cpp, scheduler_drafts.cpp): the budget left and the sequences
// placed so far, in plan order. Private to the scheduler's implementation.
#include <algorithm>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "scheduler/scheduler.h"

namespace pagoda::scheduler {

struct Scheduler::StepBuilder {
  int32_t budget = 0, slots = 0;
  std::vector<Sequence*> running;
  std::vector<std::pair<Sequence*, int32_t>> chosen;  // (sequence, tokens this step)
  std::map<const Sequence*, std::vector<int32_t>> drafts;  // decodes that verify drafted tokens

  bool has(const Sequence* s) const {
    return std::any_of(chosen.begin(), chosen.end(), [&](const auto& c) { return c.first == s; });
  }
  void choose(Sequence* s, int32_t tokens) {
    chosen.emplace_back(s, tokens);
    budget -= tokens;
    --slots;
  }
  void unchoose(Sequence* s) {
    auto it = std::find_if(chosen.begin(), chosen.end(), [&](const auto& c) { return c.first == s; });
    if (it == chosen.end()) return;
    budget += it->second;
    ++slots;
    chosen.erase(it);
    drafts.erase(s);
  }
};

}  // namespace pagoda::scheduler
