// The tokenizer on llama.cpp's own tokenizer cases: the vocabulary-only GGUFs in llama.cpp's models/
// folder (real vocabularies, merges and pre-tokenizer names of each family) with their .inp/.out files,
// the inputs and ids tests/test-tokenizer-0.cpp checks llama.cpp against (add_special false, no special
// token parsing). Every case of every listed family must give llama.cpp's ids. So must the project's
// own corpus on each of those vocabularies, with and without special-token parsing
// (tests/data/vocab_corpus_golden.json, from tools/golden/make_vocab_corpus_golden.py).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/loaded_model.h"
#include "tests/test_env.h"

namespace pagoda::engine {
namespace {

struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// As test-tokenizer-0.cpp reads them: inputs split on "\n__ggml_vocab_test__\n", one line of ids each.
std::vector<VocabCase> read_cases(const std::string& gguf) {
  const std::string raw = read_all(gguf + ".inp");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < raw.size();) {
    const size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(raw.substr(pos));
      break;
    }
    inputs.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  std::ifstream out(gguf + ".out");
  std::vector<VocabCase> cases;
  std::string line;
  for (size_t i = 0; std::getline(out, line); ++i) {
    if (i >= inputs.size()) break;
    VocabCase c{inputs[i], {}};
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), inputs.size()) << gguf << ": .inp and .out hold different numbers of cases";
  return cases;
}

std::string ids_str(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

// The families whose vocabulary files llama.cpp ships with cases (cmake/llama_jinja.cmake unpacks them).
constexpr const char* kFamilies[] = {"llama-spm", "llama-bpe", "phi-3",  "qwen2",     "qwen35",  "gemma-4",
                                     "starcoder", "deepseek-coder",  "deepseek-llm", "falcon", "gpt-2",
                                     "mpt",       "refact",    "command-r"};

class LlamaVocabCases : public ::testing::TestWithParam<const char*> {};

TEST_P(LlamaVocabCases, EveryCaseGivesLlamaCppsIds) {
  const std::string path = std::string(PAGODA_LLAMA_MODELS_DIR) + "/ggml-vocab-" + GetParam() + ".gguf";
  ASSERT_TRUE(std::filesystem::exists(path) && std::filesystem::exists(path + ".inp"))
      << path << " (and its .inp/.out) not unpacked: see cmake/llama_jinja.cmake";
  auto tok = load_tokenizer(path);
  ASSERT_TRUE(tok.ok()) << tok.message();
  const std::vector<VocabCase> cases = read_cases(path);
  ASSERT_GE(cases.size(), 30u);
  // Pieces give the text back, for the BPE families (SPM's added space prefix stays in the pieces).
  const bool round_trips = tok.value()->spec().model != "llama";
  int same = 0, back = 0;
  for (const VocabCase& c : cases) {
    const std::vector<int32_t> got = tok.value()->encode(c.text, /*add_special=*/false, /*parse_special=*/false);
    if (got == c.ids) {
      ++same;
    } else {
      ADD_FAILURE() << GetParam() << ": '" << c.text << "'\n  llama.cpp: " << ids_str(c.ids)
                    << "\n  pagoda:    " << ids_str(got);
    }
    if (!round_trips) continue;
    const std::string text = tok.value()->decode(got);
    if (text == c.text) {
      ++back;
    } else {
      ADD_FAILURE() << GetParam() << ": '" << c.text << "' decodes back to '" << text << "'";
    }
  }
  std::printf("%s: %d / %zu cases identical, %d decode back to their text\n", GetParam(), same, cases.size(), back);
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

const nlohmann::json& corpus_golden() {
  static const nlohmann::json doc = [] {
    std::ifstream in(test::data_path("vocab_corpus_golden.json"));
    EXPECT_TRUE(in.good()) << "missing tests/data/vocab_corpus_golden.json";
    return in.good() ? nlohmann::json::parse(in) : nlohmann::json::object();
  }();
  return doc;
}

TEST_P(LlamaVocabCases, ProjectCorpusGivesLlamaCppsIds) {
  const std::string path = std::string(PAGODA_LLAMA_MODELS_DIR) + "/ggml-vocab-" + GetParam() + ".gguf";
  auto tok = load_tokenizer(path);
  ASSERT_TRUE(tok.ok()) << tok.message();
  const nlohmann::json& doc = corpus_golden();
  ASSERT_TRUE(doc.contains("families") && doc["families"].contains(GetParam())) << GetParam();
  const nlohmann::json& fam = doc["families"][GetParam()];
  const nlohmann::json& corpus = doc["corpus"];
  ASSERT_EQ(fam["plain"].size(), corpus.size());
  int same = 0, total = 0;
  auto check = [&](const std::string& text, const std::vector<int32_t>& want, bool parse_special) {
    ++total;
    const std::vector<int32_t> got = tok.value()->encode(text, /*add_special=*/false, parse_special);
    if (got == want) {
      ++same;
    } else {
      ADD_FAILURE() << GetParam() << (parse_special ? " (parse_special)" : "") << ": '" << text
                    << "'\n  llama.cpp: " << ids_str(want) << "\n  pagoda:    " << ids_str(got);
    }
  };
  for (size_t i = 0; i < corpus.size(); ++i) {
    check(from_hex(corpus[i].get<std::string>()), fam["plain"][i].get<std::vector<int32_t>>(), false);
  }
  ASSERT_GE(fam["special"].size(), 80u);
  for (const nlohmann::json& c : fam["special"]) {
    check(from_hex(c["hex"].get<std::string>()), c["ids"].get<std::vector<int32_t>>(), true);
  }
  std::printf("%s: %d / %d corpus encodings identical\n", GetParam(), same, total);
}

INSTANTIATE_TEST_SUITE_P(Families, LlamaVocabCases, ::testing::ValuesIn(kFamilies),
                         [](const ::testing::TestParamInfo<const char*>& i) {
                           std::string n = i.param;
                           for (char& ch : n) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace pagoda::engine
