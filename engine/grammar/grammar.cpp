#include "engine/grammar/grammar.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <list>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <xgrammar/xgrammar.h>

#include "engine/sampling/sampling_params.h"
#include "engine/tokenizer/tokenizer.h"

namespace pagoda::engine {

class CompiledGrammar {
 public:
  CompiledGrammar(xgrammar::CompiledGrammar g, std::shared_ptr<const std::vector<uint32_t>> also)
      : grammar(std::move(g)), also_allowed(std::move(also)) {}
  xgrammar::CompiledGrammar grammar;
  // Null, or a mask every step's mask is intersected with (see json_safe_tokens).
  std::shared_ptr<const std::vector<uint32_t>> also_allowed;
};

const char* grammar_kind_name(GrammarSpec::Kind kind) {
  switch (kind) {
    case GrammarSpec::Kind::JsonSchema:
      return "json_schema";
    case GrammarSpec::Kind::JsonObject:
      return "json_object";
    case GrammarSpec::Kind::Regex:
      return "regex";
    case GrammarSpec::Kind::Choice:
      return "choice";
    case GrammarSpec::Kind::Ebnf:
      return "grammar";
    case GrammarSpec::Kind::StructuralTag:
      return "structural tag";
  }
  return "?";
}

namespace {

// Each token's bytes as the detokenizer writes them (so one table serves byte-level BPE and
// SentencePiece alike: xgrammar's VocabType::RAW); control tokens are "".
std::vector<std::string> token_pieces(const Tokenizer& tok) {
  std::vector<std::string> pieces(static_cast<size_t>(tok.vocab_size()));
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    if (!tok.is_control(id)) pieces[static_cast<size_t>(id)] = tok.token_to_piece(id, /*special=*/false);
  }
  return pieces;
}

// The vocabulary as xgrammar sees it. Control tokens ("") are xgrammar's specials (never allowed),
// except the end-of-generation ones, its stop tokens.
xgrammar::TokenizerInfo tokenizer_info(const Tokenizer& tok, const std::vector<std::string>& pieces) {
  const std::vector<int32_t>& stops = tok.end_of_generation_ids();
  return xgrammar::TokenizerInfo(pieces, xgrammar::VocabType::RAW, tok.vocab_size(),
                                 std::vector<int32_t>(stops.begin(), stops.end()));
}

// The tokens with no byte below 0x20. JSON is written compactly (no free whitespace), so no JSON output
// ever holds such a byte: outside strings only the separators' spaces are allowed, and inside one a
// control character must be escaped. xgrammar 0.2.8 lets them into a string with a length bound
// (minLength / maxLength: its character class there excludes only '"', '\\', CR and LF), which makes the
// output invalid JSON; intersecting each JSON grammar's mask with this set keeps it valid.
std::vector<uint32_t> json_safe_tokens(const Tokenizer& tok, const std::vector<std::string>& pieces) {
  std::vector<uint32_t> mask(static_cast<size_t>(token_mask_words(tok.vocab_size())), 0u);
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    const std::string& piece = pieces[static_cast<size_t>(id)];
    const bool safe = std::none_of(piece.begin(), piece.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; });
    if (safe || tok.is_end_of_generation(id)) mask[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
  }
  return mask;
}

// A regex matching exactly `s`: every character a regex gives meaning to is escaped.
std::string regex_literal(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

// The compiled-grammar cache is ours, not xgrammar's: xgrammar's keeps an entry for a grammar that
// failed to compile (its size uncounted), so a stream of distinct bad schemas would grow it without
// bound. Only grammars that compiled are kept here, LRU within the byte budget.
struct GrammarCompiler::Impl {
  Impl(const Tokenizer& tok, const std::vector<std::string>& pieces, int64_t budget)
      : compiler(tokenizer_info(tok, pieces),
                 static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u)), /*cache_enabled=*/false),
        json_safe(std::make_shared<const std::vector<uint32_t>>(json_safe_tokens(tok, pieces))), cache_budget(budget) {}

  struct Entry {
    std::string key;
    std::shared_ptr<const CompiledGrammar> grammar;
    int64_t bytes = 0;
  };

  std::shared_ptr<const CompiledGrammar> find(const std::string& key) {
    std::lock_guard lock(mu);
    auto it = index.find(key);
    if (it == index.end()) return nullptr;
    lru.splice(lru.begin(), lru, it->second);
    return it->second->grammar;
  }

  std::shared_ptr<const CompiledGrammar> insert(std::string key, std::shared_ptr<const CompiledGrammar> grammar) {
    std::lock_guard lock(mu);
    if (auto it = index.find(key); it != index.end()) return it->second->grammar;  // compiled twice at once
    const int64_t bytes = static_cast<int64_t>(grammar->grammar.MemorySizeBytes() + 2 * key.size());
    lru.push_front(Entry{key, grammar, bytes});
    index.emplace(std::move(key), lru.begin());
    used += bytes;
    while (used > cache_budget && lru.size() > 1) {
      used -= lru.back().bytes;
      index.erase(lru.back().key);
      lru.pop_back();
    }
    return grammar;
  }

  xgrammar::GrammarCompiler compiler;
  std::shared_ptr<const std::vector<uint32_t>> json_safe;
  const int64_t cache_budget;
  std::mutex mu;  // guards the cache below
  std::list<Entry> lru;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index;
  int64_t used = 0;
};

GrammarCompiler::GrammarCompiler(const Tokenizer& tokenizer, int64_t cache_bytes)
    : impl_(std::make_unique<Impl>(tokenizer, token_pieces(tokenizer), cache_bytes)) {}
GrammarCompiler::~GrammarCompiler() = default;

namespace {

// xgrammar's errors (LogFatalError) say "[time] /its/source.cc:line: Check failed: (cond) is false: msg"
// from what(); the client gets msg alone, its first line.
std::string xgrammar_message(const std::exception& e) {
  const auto* runtime = dynamic_cast<const std::runtime_error*>(&e);
  std::string m = runtime ? runtime->std::runtime_error::what() : e.what();
  if (m.rfind("Check failed:", 0) == 0) {
    if (const size_t at = m.find(" is false: "); at != std::string::npos) m.erase(0, at + 11);
  }
  if (const size_t nl = m.find('\n'); nl != std::string::npos && nl > 0) m.resize(nl);
  return m;
}

std::string cache_key(const GrammarSpec& spec) {
  std::string key = grammar_kind_name(spec.kind);
  key += '\0';
  key += spec.text;
  for (const std::string& choice : spec.choices) (key += '\0') += choice;
  return key;
}

}  // namespace

Result<std::shared_ptr<const CompiledGrammar>> GrammarCompiler::compile(const GrammarSpec& spec) {
  size_t bytes = spec.text.size();
  for (const std::string& choice : spec.choices) bytes += choice.size();
  if (bytes > kMaxGrammarBytes) {
    return Status::error(fmt::format("the {} is {} bytes; at most {} are allowed", grammar_kind_name(spec.kind), bytes,
                                     kMaxGrammarBytes));
  }
  if (spec.kind == GrammarSpec::Kind::Choice && spec.choices.empty()) {
    return Status::error("a choice constraint needs at least one choice");
  }
  std::string key = cache_key(spec);
  if (auto cached = impl_->find(key)) return cached;

  // Compact JSON (no free whitespace): a small model given free whitespace can spend its whole
  // budget on newlines; the separators are the usual ", " and ": ".
  constexpr bool kAnyWhitespace = false;
  xgrammar::GrammarCompiler& c = impl_->compiler;
  std::shared_ptr<const CompiledGrammar> made;
  try {
    switch (spec.kind) {
      case GrammarSpec::Kind::JsonSchema:
        made = std::make_shared<const CompiledGrammar>(c.CompileJSONSchema(spec.text, kAnyWhitespace), impl_->json_safe);
        break;
      case GrammarSpec::Kind::JsonObject:
        made = std::make_shared<const CompiledGrammar>(c.CompileJSONSchema(R"({"type": "object"})", kAnyWhitespace),
                                                       impl_->json_safe);
        break;
      case GrammarSpec::Kind::Regex:
        made = std::make_shared<const CompiledGrammar>(c.CompileRegex(spec.text), nullptr);
        break;
      case GrammarSpec::Kind::Choice: {
        std::string alternation;
        for (const std::string& choice : spec.choices) {
          if (!alternation.empty()) alternation += '|';
          alternation += '(' + regex_literal(choice) + ')';
        }
        made = std::make_shared<const CompiledGrammar>(c.CompileRegex(alternation), nullptr);
        break;
      }
      case GrammarSpec::Kind::Ebnf:
        made = std::make_shared<const CompiledGrammar>(c.CompileGrammar(spec.text, "root"), nullptr);
        break;
      case GrammarSpec::Kind::StructuralTag:
        // No JSON-safe mask: a tag's text outside its JSON (e.g. "<tool_call>\n") may need a newline.
        made = std::make_shared<const CompiledGrammar>(c.CompileStructuralTag(spec.text), nullptr);
        break;
    }
  } catch (const std::exception& e) {
    return Status::error(fmt::format("the {} does not compile: {}", grammar_kind_name(spec.kind), xgrammar_message(e)));
  }
  if (!made) return Status::error("unknown grammar kind");
  return impl_->insert(std::move(key), std::move(made));
}

struct GrammarProcessor::Impl {
  explicit Impl(const CompiledGrammar& compiled)
      : grammar(compiled.grammar), also_allowed(compiled.also_allowed), matcher(compiled.grammar),
        stops(compiled.grammar.GetTokenizerInfo().GetStopTokenIds()),
        bitmask(static_cast<size_t>(xgrammar::GetBitmaskSize(compiled.grammar.GetTokenizerInfo().GetVocabSize()))) {
    shape = static_cast<int64_t>(bitmask.size());
    tensor.data = bitmask.data();
    tensor.device = DLDevice{kDLCPU, 0};
    tensor.ndim = 1;
    tensor.dtype = xgrammar::GetBitmaskDLType();
    tensor.shape = &shape;
    tensor.strides = nullptr;
    tensor.byte_offset = 0;
  }

  // From now on only end-of-generation tokens (see active()).
  void fail(const char* what) {
    if (!failed) spdlog::error("grammar: {}; the sequence ends here", what);
    failed = true;
  }

  void allow_only_stops(std::span<uint32_t> mask) const {
    std::fill(mask.begin(), mask.end(), 0u);
    for (int32_t t : stops) {
      if (t >= 0 && static_cast<size_t>(t) / 32 < mask.size()) mask[static_cast<size_t>(t) / 32] |= 1u << (t % 32);
    }
  }

  xgrammar::CompiledGrammar grammar;  // shared (a handle): the matcher's grammar stays alive
  std::shared_ptr<const std::vector<uint32_t>> also_allowed;
  xgrammar::GrammarMatcher matcher;
  std::vector<int32_t> stops;
  std::vector<int32_t> bitmask;  // xgrammar's layout is ours: bit t % 32 of word t / 32 = token t allowed
  int64_t shape = 0;
  DLTensor tensor{};
  bool failed = false;
  bool done = false;  // an end-of-generation token was accepted
};

GrammarProcessor::GrammarProcessor(std::shared_ptr<const CompiledGrammar> grammar)
    : impl_(std::make_unique<Impl>(*grammar)) {}
GrammarProcessor::~GrammarProcessor() = default;

bool GrammarProcessor::active() const { return !impl_->done; }

void GrammarProcessor::apply(std::span<float> logits) {
  Impl& m = *impl_;
  const std::span<uint32_t> mask(reinterpret_cast<uint32_t*>(m.bitmask.data()), m.bitmask.size());
  if (m.failed) {
    m.allow_only_stops(mask);
    return apply_token_mask(logits, mask);
  }
  bool masks = false;
  try {
    masks = m.matcher.FillNextTokenBitmask(&m.tensor);
  } catch (const std::exception& e) {
    m.fail(e.what());
    m.allow_only_stops(mask);
    return apply_token_mask(logits, mask);
  }
  if (!masks && !m.also_allowed) return;  // everything allowed
  if (!masks) std::fill(mask.begin(), mask.end(), ~0u);
  if (m.also_allowed) {
    const std::vector<uint32_t>& also = *m.also_allowed;
    for (size_t w = 0; w < mask.size() && w < also.size(); ++w) mask[w] &= also[w];
  }
  if (std::all_of(mask.begin(), mask.end(), [](uint32_t w) { return w == 0; })) {
    m.fail("the grammar allows no token");
    m.allow_only_stops(mask);
  }
  apply_token_mask(logits, mask);
}

void GrammarProcessor::accept(int32_t token) {
  Impl& m = *impl_;
  if (std::find(m.stops.begin(), m.stops.end(), token) != m.stops.end()) m.done = true;
  if (m.failed || m.matcher.IsTerminated()) return;
  try {
    // Only a token the mask allowed is ever drawn, so a refusal is a bug, not bad input.
    if (!m.matcher.AcceptToken(token)) m.fail(fmt::format("token {} was drawn but the grammar does not accept it", token).c_str());
  } catch (const std::exception& e) {
    m.fail(e.what());
  }
}

}  // namespace pagoda::engine
