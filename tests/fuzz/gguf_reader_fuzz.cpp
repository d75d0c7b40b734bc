// libFuzzer target: the GGUF reader (engine/gguf) and what reads a model's metadata from it (the model
// config, the tokenizer spec and the tokenizer built from it). Properties: a parse is either an error
// that names the input, or a file whose every string, array and tensor lies inside the input; every
// typed getter and the consumers answer with a value or an error, never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "engine/gguf/gguf_file.h"
#include "engine/model/model_config.h"
#include "engine/tokenizer/tokenizer.h"

using namespace pagoda::engine;

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "gguf_reader_fuzz: property violated: %s\n", what);
  std::abort();
}

void check_inside(const uint8_t* begin, const uint8_t* end, const void* p, uint64_t n, const char* what) {
  const auto* q = static_cast<const uint8_t*>(p);
  if (n == 0) return;
  if (q < begin || q > end || n > static_cast<uint64_t>(end - q)) violated(what);
}

void use_tokenizer(const Tokenizer& tok) {
  const int32_t n = tok.vocab_size();
  // Every piece of a small vocabulary (bounded for a large one), in both modes.
  for (int32_t id = -1; id <= n && id < 4096; ++id) {
    (void)tok.token_to_piece(id, false);
    (void)tok.token_to_piece(id, true);
    (void)tok.token_attr(id);
  }
  for (const char* text : {"", "Hello world", " a  b\n\t", "\xC3\xA9\xE4\xBD\xA0\xF0\x9F\x98\x80", "\xFF\xFE<s></s>"}) {
    for (bool parse_special : {false, true}) {
      const std::vector<int32_t> ids = tok.encode(text, true, parse_special);
      for (int32_t id : ids) {
        if (id < 0 || id >= n) violated("encode returned an id outside the vocabulary");
      }
      (void)tok.decode(ids, parse_special);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = GgufFile::parse(std::span<const uint8_t>(data, size), "input.gguf");
  if (!parsed.ok()) {
    if (parsed.message().rfind("input.gguf: ", 0) != 0) violated("an error that does not name the file");
    return 0;
  }
  const GgufFile& f = *parsed.value();
  const uint8_t* end = data + size;
  if (f.version() != 2 && f.version() != 3) violated("a version other than 2 or 3 was accepted");
  for (const auto& [key, v] : f.metadata()) {
    check_inside(data, end, v.str.data(), v.str.size(), "a string value outside the input");
    for (std::string_view s : v.strings) check_inside(data, end, s.data(), s.size(), "an array string outside the input");
    if (v.type == GgufValueType::ARRAY && v.elem_type != GgufValueType::STRING && v.count > 0) {
      if (v.raw == nullptr) violated("array data missing");
    }
    (void)f.get_int(key);
    (void)f.get_float(key);
    (void)f.get_bool(key);
    (void)f.get_string(key);
    (void)f.get_string_array(key);
    (void)f.get_float_array(key);
    (void)f.get_int_array(key);
    if (f.find(key) != &v) violated("find() does not return the entry");
  }
  for (const GgufTensorInfo& t : f.tensors()) {
    check_inside(data, end, t.data, t.nbytes, "tensor data outside the input");
    if (t.nbytes > 0 && t.data == nullptr) violated("tensor without data");
    if (f.find_tensor(t.name) != &t) violated("find_tensor() does not return the tensor");
    if (t.dims.empty() || t.dims.size() > 4) violated("tensor rank outside 1..4");
  }

  (void)model_config_from_gguf(f);
  auto spec = tokenizer_spec_from_gguf(f);
  if (!spec.ok()) return 0;
  // Very large vocabularies only cost time here; the tokenizer target runs the real one.
  if (spec.value().tokens.size() > 20000) return 0;
  auto tok = Tokenizer::create(std::move(spec).value());
  if (tok.ok()) use_tokenizer(*tok.value());
  return 0;
}
