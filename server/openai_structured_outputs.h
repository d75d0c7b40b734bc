#pragma once
// The OpenAI request fields that constrain the output to a grammar (constrained decoding, DESIGN.md),
// read into an engine::GrammarSpec:
//   response_format  {"type": "text"} (none), {"type": "json_object"}, or
//                    {"type": "json_schema", "json_schema": {"name", "schema", "strict", "description"}}
//   vLLM's fields    guided_json (a schema, object or JSON text), guided_regex, guided_choice (strings),
//                    guided_grammar (EBNF), or its newer structured_outputs object with one of
//                    json / regex / choice / grammar / json_object
// At most one of them may constrain a request. Whether the grammar compiles is the compiler's to say
// (engine/grammar/grammar.h), with a 400 naming `param()` of the spec's field.
#include <optional>
#include <string>

#include "engine/grammar/grammar.h"
#include "server/openai_json_fields.h"

namespace pagoda::server::openai {

struct StructuredOutput {
  engine::GrammarSpec spec;
  std::string param;  // the request field it came from, for errors
};

// Throws Reject (a 400 naming the field) on a malformed or conflicting constraint.
std::optional<StructuredOutput> parse_structured_output(const Fields& f);

// The JSON schema of a parsed JsonSchema constraint, as the client ordered its keys. The request is
// parsed into a sorted JSON object, but xgrammar writes properties in the schema's order, and clients
// rely on it (OpenAI keeps it: "reasoning" before "answer"). `body` is the request body that parsed.
std::string schema_in_client_order(std::string_view body, const std::string& param);

}  // namespace pagoda::server::openai
