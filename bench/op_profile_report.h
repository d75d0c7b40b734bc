#pragma once
// Reporting a backend's op profile (Backend::take_op_profile, CpuBackendOptions::profile_ops) in the
// benchmarks: sums over runs, one line of shares, and the JSON the bench scripts read.
#include <string>

#include <nlohmann/json.hpp>

#include "engine/backend.h"

namespace pagoda::bench {

// `into` += `p` kind by kind (a backend reports the same kinds in the same order); an empty `into` takes p.
void add_profile(engine::OpProfile& into, const engine::OpProfile& p);
double profile_total_s(const engine::OpProfile& p);
// "N steps, X ms/step: attn_matmuls 31.2% ...": the kinds that took any time, in the backend's order.
std::string profile_text(const engine::OpProfile& p);
// {"steps", "total_seconds", "kinds": {kind: {"seconds", "share"}}}
nlohmann::json profile_json(const engine::OpProfile& p);

}  // namespace pagoda::bench
