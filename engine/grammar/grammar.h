#pragma once
// Constrained decoding (DESIGN.md): a request's grammar, compiled against the model's vocabulary by
// xgrammar's C++ core, and the sampler stage that keeps a sequence inside it.
//
//   GrammarSpec       what the request asks for: a JSON schema, any JSON value, a regex, one of a list
//                     of strings, or an EBNF grammar (plain values, filled by the front ends)
//   GrammarCompiler   one per model: the vocabulary as xgrammar sees it (built once), and compile(),
//                     thread-safe and cached (bounded) so the front ends compile off the engine thread
//   CompiledGrammar   immutable, shared by every sequence that uses it (SamplingParams::grammar)
//   GrammarProcessor  stage 3 of the sampler pipeline (engine/sampling/logits_processors.h): before each
//                     draw it asks its matcher for the allowed tokens and masks the rest; accept()
//                     advances the matcher by the committed token.
//
// The grammar is a sampler stage (llama.cpp's chain puts it there too), not a mask the scheduler puts
// in the plan: a verification step draws several tokens of one sequence from consecutive rows, and
// each draw needs the grammar state after the tokens drawn before it, which only the sampler has.
// A draft the grammar forbids can then never equal the masked draw, so it is simply not accepted.
// When the grammar is complete only end-of-generation tokens are allowed, so output ends there.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/sampling/logits_processors.h"
#include "engine/status.h"

namespace pagoda::engine {

class Tokenizer;

struct GrammarSpec {
  // StructuralTag: xgrammar's structural tag (JSON text): tags with JSON-schema contents, e.g. tool calls.
  enum class Kind { JsonSchema, JsonObject, Regex, Choice, Ebnf, StructuralTag };
  Kind kind = Kind::JsonObject;
  std::string text;                  // JsonSchema: the schema (JSON text); Regex: the pattern; Ebnf: the grammar;
                                     // StructuralTag: the structural tag (JSON text)
  std::vector<std::string> choices;  // Choice: the output is exactly one of these
};

const char* grammar_kind_name(GrammarSpec::Kind kind);

// Choices of a choice constraint, at most (the front ends refuse more with a message naming the limit).
inline constexpr size_t kMaxGrammarChoices = 1024;
// Bytes of a grammar's text (schema, regex, EBNF, all choices together), at most.
inline constexpr size_t kMaxGrammarBytes = size_t{1} << 20;

class CompiledGrammar;  // engine/grammar/grammar.cpp

class GrammarCompiler {
 public:
  // cache_bytes: memory the compiled-grammar cache may hold (xgrammar's LRU cache, keyed by the spec).
  GrammarCompiler(const Tokenizer& tokenizer, int64_t cache_bytes);
  ~GrammarCompiler();
  GrammarCompiler(const GrammarCompiler&) = delete;
  GrammarCompiler& operator=(const GrammarCompiler&) = delete;

  // Thread-safe. InvalidArgument with xgrammar's message when the schema, regex or grammar does not
  // compile (or uses what it does not support), or is over kMaxGrammarBytes.
  Result<std::shared_ptr<const CompiledGrammar>> compile(const GrammarSpec& spec);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class GrammarProcessor final : public LogitsProcessor {
 public:
  explicit GrammarProcessor(std::shared_ptr<const CompiledGrammar> grammar);
  ~GrammarProcessor() override;
  const char* name() const override { return "grammar"; }
  // Until an end-of-generation token is accepted. Should the matcher ever fail (an internal check of
  // xgrammar throws) or allow nothing, the stage allows only end-of-generation tokens from then on: the
  // sequence ends there, the engine thread goes on.
  bool active() const override;
  void apply(std::span<float> logits) override;
  void accept(int32_t token) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pagoda::engine
