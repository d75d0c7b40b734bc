// Randomized soak of KvCacheManager, the scheduler issue's acceptance point: after 1,000 requests with
// shared prefixes, chunked prefill, decode growth, forks, cancellations and preemption on a pool small
// enough to run out, every block is back in the pool and the prefix cache is consistent. A simulated
// physical KV checks the bookkeeping end to end. Each slot holds a hash of the sequence's tokens up to
// and including its position (as real K/V depend on the whole prefix), and after every step each sequence
// must read back exactly its own, through prefix hits and copy-on-write alike. With a
// window pool (sliding-window layers) each sequence must also read back the keys of its next token's
// window through its window table, while holding no more window blocks than that window spans.
#include "engine/kv/kv_cache_manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <random>
#include <vector>

namespace pagoda::engine {
namespace {

constexpr int32_t kBlock = 4;
constexpr int32_t kBlocks = 48;
constexpr int32_t kRequests = 1000;
constexpr size_t kMaxRunning = 10;
constexpr int32_t kWindow = 7;         // the windowed run's window: keys p - 6 .. p
constexpr int32_t kWindowBlocks = 40;  // enough for the running sequences' windows and steps, barely

struct Request {
  uint64_t id = 0;
  std::vector<int32_t> tokens;  // prompt, then sampled tokens
  int32_t computed = 0;         // tokens whose KV is written and committed
  int32_t target_len = 0;
};

struct SoakCounts {
  int64_t finished = 0, cancelled = 0, preempted = 0, forks = 0, copies = 0, window_copies = 0;
};

class Soak {
 public:
  explicit Soak(bool prefix_caching, int32_t window = 0)
      : kv_({.num_blocks = kBlocks,
             .block_size = kBlock,
             .enable_prefix_caching = prefix_caching,
             .window = window,
             .num_window_blocks = window > 0 ? kWindowBlocks : 0}),
        window_(window),
        mem_(static_cast<size_t>(kBlocks * kBlock), 0),
        wmem_(static_cast<size_t>(kWindowBlocks * kBlock), 0) {
    for (int32_t len : {5, 9, 14, 21}) prefixes_.push_back(random_tokens(len));
  }

  SoakCounts run() {
    int32_t started = 0;
    for (int64_t iter = 0; started < kRequests || !running_.empty() || !waiting_.empty(); ++iter) {
      if (iter > 500'000) {
        ADD_FAILURE() << "soak made no progress";
        break;
      }
      while (running_.size() < kMaxRunning && (started < kRequests || !waiting_.empty())) {
        Request r;
        if (!waiting_.empty()) {
          r = std::move(waiting_.front());  // preempted: recompute everything it had
          waiting_.pop_front();
        } else {
          r = new_request();
          ++started;
        }
        admit(std::move(r));
        if (::testing::Test::HasFailure()) return counts_;
      }
      step_all();
      if (::testing::Test::HasFailure()) return counts_;
      if (iter % 8 == 0) {
        const Status st = kv_.check_consistency();
        if (!st.ok()) {
          ADD_FAILURE() << "iteration " << iter << ": " << st.message();
          return counts_;
        }
      }
    }
    return counts_;
  }

  KvCacheManager& kv() { return kv_; }

 private:
  int32_t uniform(int32_t lo, int32_t hi) { return std::uniform_int_distribution<int32_t>(lo, hi)(rng_); }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  std::vector<int32_t> random_tokens(int32_t n) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int32_t& x : t) x = uniform(0, 999);
    return t;
  }

  Request new_request() {
    Request r;
    r.id = next_id_++;
    r.tokens = prefixes_[static_cast<size_t>(uniform(0, static_cast<int32_t>(prefixes_.size()) - 1))];
    if (chance(0.3)) {  // a block of its own first: the same blocks then follow different prefixes
      const std::vector<int32_t> head = random_tokens(kBlock);
      r.tokens.insert(r.tokens.begin(), head.begin(), head.end());
    }
    const std::vector<int32_t> suffix = random_tokens(uniform(0, 8));
    r.tokens.insert(r.tokens.end(), suffix.begin(), suffix.end());
    r.target_len = static_cast<int32_t>(r.tokens.size()) + uniform(1, 24);
    return r;
  }

  // What a slot holds for position `pos` of `tokens`: a hash of tokens[0..pos].
  static std::vector<uint64_t> prefix_hashes(const std::vector<int32_t>& tokens) {
    std::vector<uint64_t> h(tokens.size());
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t p = 0; p < tokens.size(); ++p) {
      x = (x ^ static_cast<uint64_t>(tokens[p])) * 0x100000001b3ULL;
      x ^= x >> 29;
      h[p] = x;
    }
    return h;
  }

  uint64_t& slot(uint64_t seq, int32_t pos) {
    const std::span<const int32_t> table = kv_.block_table(seq);
    return mem_[static_cast<size_t>(table[static_cast<size_t>(pos / kBlock)] * kBlock + pos % kBlock)];
  }

  uint64_t& window_slot(uint64_t seq, int32_t pos) {
    const int32_t block = kv_.window_block_table(seq)[static_cast<size_t>(pos / kBlock)];
    EXPECT_GE(block, 0) << "sequence " << seq << " position " << pos << " has no window block";
    return wmem_[static_cast<size_t>(std::max(block, 0) * kBlock + pos % kBlock)];
  }

  // Every position the sequence has computed reads back its own token; with a window pool, every key
  // the next token's window holds does so through the window table too, and no other window block is held.
  void verify(const Request& r, int32_t upto) {
    ASSERT_GE(kv_.block_table(r.id).size() * kBlock, static_cast<size_t>(upto));
    const std::vector<uint64_t> want = prefix_hashes(r.tokens);
    for (int32_t p = 0; p < upto; ++p) {
      ASSERT_EQ(slot(r.id, p), want[static_cast<size_t>(p)]) << "sequence " << r.id << " position " << p;
    }
    if (window_ == 0) return;
    const int32_t first = std::max(0, upto + 1 - window_);
    for (int32_t p = first; p < upto; ++p) {
      ASSERT_EQ(window_slot(r.id, p), want[static_cast<size_t>(p)]) << "sequence " << r.id << " window position " << p;
    }
    const std::span<const int32_t> w = kv_.window_block_table(r.id);
    const auto held = std::count_if(w.begin(), w.end(), [](int32_t b) { return b >= 0; });
    ASSERT_LE(held, (upto + kBlock - 1) / kBlock - first / kBlock) << "sequence " << r.id << " after " << upto;
  }

  void admit(Request r) {
    r.computed = kv_.start_sequence(r.id, r.tokens);
    ASSERT_EQ(r.computed % kBlock, 0);
    ASSERT_LT(r.computed, static_cast<int32_t>(r.tokens.size()));
    ASSERT_EQ(kv_.block_table(r.id).size(), static_cast<size_t>(r.computed / kBlock));
    verify(r, r.computed);  // a prefix hit must hold exactly this prompt's tokens
    running_.push_back(std::move(r));
  }

  void step_all() {
    std::vector<Request> next;
    for (Request& r : running_) {
      if (chance(0.004)) {
        kv_.free(r.id);  // client went away mid-way
        ++counts_.cancelled;
        continue;
      }
      if (r.computed == static_cast<int32_t>(r.tokens.size())) {
        if (r.computed >= r.target_len) {
          kv_.free(r.id);
          ++counts_.finished;
          continue;
        }
        if (running_.size() + next.size() < kMaxRunning + 4 && chance(0.03)) {
          Request child = r;  // n > 1: the child continues from the same KV, then diverges
          child.id = next_id_++;
          kv_.fork(r.id, child.id);
          ++counts_.forks;
          child.tokens.push_back(uniform(0, 999));
          next.push_back(std::move(child));
        }
        r.tokens.push_back(uniform(0, 999));  // sampled last step; its KV is written this step
      }
      const int32_t pending = static_cast<int32_t>(r.tokens.size()) - r.computed;
      const int32_t n = std::min(pending, uniform(1, 8));  // chunked prefill, or one decode token
      if (!kv_.allocate_slots(r.id, r.computed + n)) {
        kv_.free(r.id);  // preempted: recompute later
        ++counts_.preempted;
        r.computed = 0;
        waiting_.push_back(std::move(r));
        continue;
      }
      ASSERT_EQ(kv_.block_table(r.id).size(), static_cast<size_t>((r.computed + n + kBlock - 1) / kBlock));
      for (auto [src, dst] : kv_.take_pending_copies()) {  // the backend's copy_blocks, before the step
        ASSERT_NE(src, dst);
        std::copy_n(mem_.begin() + src * kBlock, kBlock, mem_.begin() + dst * kBlock);
        ++counts_.copies;
      }
      for (auto [src, dst] : kv_.take_pending_window_copies()) {
        ASSERT_NE(src, dst);
        std::copy_n(wmem_.begin() + src * kBlock, kBlock, wmem_.begin() + dst * kBlock);
        ++counts_.window_copies;
      }
      const std::vector<uint64_t> hashes = prefix_hashes(r.tokens);
      for (int32_t p = r.computed; p < r.computed + n; ++p) {
        slot(r.id, p) = hashes[static_cast<size_t>(p)];
        if (window_ > 0) window_slot(r.id, p) = hashes[static_cast<size_t>(p)];
      }
      r.computed += n;
      kv_.commit_tokens(r.id, std::span<const int32_t>(r.tokens).first(static_cast<size_t>(r.computed)));
      verify(r, r.computed);
      if (::testing::Test::HasFailure()) return;
      next.push_back(std::move(r));
    }
    running_ = std::move(next);
  }

  KvCacheManager kv_;
  int32_t window_;
  std::mt19937_64 rng_{20240611};
  std::vector<uint64_t> mem_;   // simulated physical KV: the prefix hash written in each slot
  std::vector<uint64_t> wmem_;  // the same for the window pool
  std::vector<std::vector<int32_t>> prefixes_;
  std::vector<Request> running_;
  std::deque<Request> waiting_;
  uint64_t next_id_ = 1;
  SoakCounts counts_;
};

void expect_all_blocks_back(KvCacheManager& kv) {
  const KvCacheStats st = kv.stats();
  EXPECT_EQ(st.used_blocks, 0);
  EXPECT_EQ(st.used_window_blocks, 0);
  EXPECT_EQ(kv.num_available_blocks(), kBlocks);  // every block free or cached
  const Status ok = kv.check_consistency();
  EXPECT_TRUE(ok.ok()) << ok.message();
}

TEST(KvCacheSoak, ThousandRequestsReturnEveryBlock) {
  Soak soak(/*prefix_caching=*/true);
  const SoakCounts c = soak.run();
  ASSERT_FALSE(::testing::Test::HasFailure());
  EXPECT_EQ(c.finished + c.cancelled, kRequests + c.forks);
  // The scenario exercised what it is meant to.
  EXPECT_GT(c.cancelled, 0);
  EXPECT_GT(c.preempted, 0);
  EXPECT_GT(c.forks, 0);
  EXPECT_GT(c.copies, 0);
  const KvCacheStats st = soak.kv().stats();
  EXPECT_GT(st.prefix_hits, 0);
  EXPECT_GT(st.cached_blocks, 0);
  expect_all_blocks_back(soak.kv());
}

TEST(KvCacheSoak, ThousandRequestsWithoutPrefixCaching) {
  Soak soak(/*prefix_caching=*/false);
  const SoakCounts c = soak.run();
  ASSERT_FALSE(::testing::Test::HasFailure());
  EXPECT_EQ(c.finished + c.cancelled, kRequests + c.forks);
  EXPECT_EQ(soak.kv().stats().prefix_hits, 0);
  EXPECT_EQ(soak.kv().stats().cached_blocks, 0);
  expect_all_blocks_back(soak.kv());
}

// The window pool: the same workload, each sequence holding only its window there. Prefix hits must
// find the hit's last window cached; forks copy shared window blocks on write.
TEST(KvCacheSoak, ThousandRequestsWithAWindowPool) {
  Soak soak(/*prefix_caching=*/true, kWindow);
  const SoakCounts c = soak.run();
  ASSERT_FALSE(::testing::Test::HasFailure());
  EXPECT_EQ(c.finished + c.cancelled, kRequests + c.forks);
  EXPECT_GT(c.preempted, 0);
  EXPECT_GT(c.window_copies, 0);
  const KvCacheStats st = soak.kv().stats();
  EXPECT_GT(st.prefix_hits, 0);
  EXPECT_GT(st.cached_window_blocks, 0);
  expect_all_blocks_back(soak.kv());
}

TEST(KvCacheSoak, ThousandRequestsWithAWindowPoolWithoutPrefixCaching) {
  Soak soak(/*prefix_caching=*/false, kWindow);
  const SoakCounts c = soak.run();
  ASSERT_FALSE(::testing::Test::HasFailure());
  EXPECT_EQ(c.finished + c.cancelled, kRequests + c.forks);
  EXPECT_EQ(soak.kv().stats().cached_window_blocks, 0);
  expect_all_blocks_back(soak.kv());
}

}  // namespace
}  // namespace pagoda::engine
