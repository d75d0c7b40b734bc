#pragma once
// What a forward step costs as a function of the tokens in it, measured on this backend: profiled at
// start-up and refreshed from every step the engine runs (an exponential moving average per bucket of
// token counts, linear between measured buckets). Speculative decoding asks it what k more tokens in
// a step would cost (scheduler/draft_policy.h): on a GPU a few more rows are nearly free, on a CPU
// they are not, and a batch that is already compute-bound leaves no room at all.
#include <cstdint>
#include <string>
#include <vector>

namespace pagoda::engine {

class StepCostModel {
 public:
  StepCostModel();
  void observe(int32_t tokens, double ms);
  // Estimated ms of a step of `tokens` tokens; 0 until something was measured.
  double estimate_ms(int32_t tokens) const;
  bool ready() const;                // a one-token step and a larger one were measured
  // A step of `tokens` is within what was measured: a step no larger was (below the smallest
  // measurement the estimate is that measurement, an overestimate).
  bool covers(int32_t tokens) const;
  std::string describe() const;      // "tokens:ms" for every measured bucket

 private:
  static int32_t bucket_of(int32_t tokens);  // exact up to 16, then one per power of two
  std::vector<double> ms_, tokens_;         // moving averages of a bucket's steps: time and size
  std::vector<int32_t> n_;
};

}  // namespace pagoda::engine
