// libFuzzer target: the JSON reader (format/json.cpp) and what reads config.json, tokenizer.json and
// tokenizer_config.json of a Hugging Face folder (format/hf_config.cpp, hf_arch.cpp, hf_tokenizer.cpp,
// hf_folder.cpp), through the entry point wrenlm.Model uses for a folder (HfFolder), then the
// tokenizer those keys make, run on a fixed text.
//
// Input: byte 0 picks what the rest is:
//   0  a JSON document: parsed, every value read with each typed getter, then read as a config.json
//   1  config.json of a folder whose tokenizer.json and weights are fixed
//   2  tokenizer.json of a folder whose config.json and weights are fixed
//   3  tokenizer_config.json beside the fixed config.json and tokenizer.json
// The folder lives in a temporary directory made once (/dev/shm when present); its weights are a tiny F32 safetensors file.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "format/hf_config.h"
#include "format/hf_folder.h"
#include "format/json.h"
#include "fuzz_common.h"
#include "tokenizer/tokenizer.h"

namespace {

// A Llama config matching the fixed weights below (hidden size 8, vocabulary 64).
const char kConfig[] = R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":8,
"intermediate_size":16,"num_attention_heads":2,"num_key_value_heads":1,"num_hidden_layers":1,
"max_position_embeddings":64,"rms_norm_eps":1e-6,"rope_theta":10000.0,"vocab_size":64,
"bos_token_id":1,"eos_token_id":2,"tie_word_embeddings":true})";

// A byte-level BPE tokenizer.json (GPT-2 pre-tokenizer) over a few letters with two merges.
const char kTokenizer[] = R"({"version":"1.0","truncation":null,"padding":null,
"added_tokens":[{"id":0,"content":"<|endoftext|>","single_word":false,"lstrip":false,"rstrip":false,
"normalized":false,"special":true},{"id":1,"content":"<|im_start|>","special":true},
{"id":2,"content":"<|im_end|>","special":true}],
"normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},
"post_processor":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true},
"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},
"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,
"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,
"vocab":{"<|endoftext|>":0,"<|im_start|>":1,"<|im_end|>":2,"h":3,"e":4,"l":5,"o":6,"\u0120":7,"w":8,"r":9,"d":10,
"he":11,"ll":12,"\u0120w":13,"1":14,"2":15,"!":16},
"merges":["h e","l l","\u0120 w"]}})";

const char kTokenizerConfig[] = R"({"bos_token":"<|im_start|>","eos_token":"<|im_end|>",
"chat_template":"{% for m in messages %}{{ m['content'] }}{% endfor %}"})";

std::string g_dir;

void write_file(const std::string& name, const void* data, size_t size) {
  const std::string path = g_dir + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(data, 1, size, f) != size || std::fclose(f) != 0) std::abort();
}

void write_text(const std::string& name, const char* s) { write_file(name, s, std::strlen(s)); }

// model.safetensors: model.embed_tokens.weight (64, 8) and model.norm.weight (8), zeros.
void write_weights() {
  std::string header =
      R"({"model.embed_tokens.weight":{"dtype":"F32","shape":[64,8],"data_offsets":[0,2048]},)"
      R"("model.norm.weight":{"dtype":"F32","shape":[8],"data_offsets":[2048,2080]}})";
  while (header.size() % 8) header += ' ';
  std::string file(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(&file[0], &n, 8);
  file += header;
  file.append(2080, '\0');
  write_file("model.safetensors", file.data(), file.size());
}

void make_folder() {
  // In memory (tmpfs) where there is one: every input rewrites a file of the folder.
  char shm[] = "/dev/shm/wrenlm-fuzz-hf-XXXXXX";
  char tmp[] = "/tmp/wrenlm-fuzz-hf-XXXXXX";
  const char* dir = ::mkdtemp(shm);
  if (!dir) dir = ::mkdtemp(tmp);
  if (!dir) std::abort();
  g_dir = dir;
  write_weights();
  std::atexit([] {
    for (const char* f : {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"})
      ::unlink((g_dir + "/" + f).c_str());
    ::rmdir(g_dir.c_str());
  });
}

void walk(const wren::JsonValue& v) {
  wren_fuzz::expect_wren_errors([&] { (void)v.as_bool(); });
  wren_fuzz::expect_wren_errors([&] { (void)v.as_int(); });
  wren_fuzz::expect_wren_errors([&] { (void)v.as_double(); });
  wren_fuzz::expect_wren_errors([&] { (void)v.as_string(); });
  (void)v.path();
  if (v.is_array())
    for (const wren::JsonValue& e : v.as_array()) walk(e);
  if (v.is_object())
    for (const wren::JsonValue::Member& m : v.as_object()) {
      if (v.find(m.first) == nullptr) __builtin_trap();
      walk(m.second);
    }
}

void read_as_config(const wren::JsonValue& root) {
  const wren::HfConfig c(root);
  (void)c.model_type();
  (void)c.opt_int({"hidden_size", "n_embd", "d_model"});
  (void)c.opt_double({"rope_theta", "rms_norm_eps"});
  (void)c.rope("factor");
  (void)c.rope("rope_type");
  (void)c.local_rope_theta();
}

void open_folder() {
  wren::HfFolder folder(g_dir);
  for (const std::string& key : folder.keys()) (void)folder.find(key);
  const std::unique_ptr<wren::Tokenizer> tok = wren::Tokenizer::from_source(folder);
  static const int32_t kIds[] = {0, 1, 2, 3, 15, 16, 17, 63, 64, -1};
  wren_fuzz::exercise_tokenizer(*tok, "hello world! <|im_start|>12 \xC3\xA9\n",
                                std::vector<int32_t>(std::begin(kIds), std::end(kIds)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (g_dir.empty()) make_folder();
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 4;
  const char* body = reinterpret_cast<const char*>(data + 1);
  const size_t n = size - 1;
  if (mode == 0) {
    wren_fuzz::expect_wren_errors([&] {
      const wren::JsonDocument doc = wren::parse_json(body, n, "fuzz.json");
      walk(*doc.root);
      read_as_config(*doc.root);
    });
    return 0;
  }
  write_text("config.json", kConfig);
  write_text("tokenizer.json", kTokenizer);
  ::unlink((g_dir + "/tokenizer_config.json").c_str());
  if (mode == 1) write_file("config.json", body, n);
  if (mode == 2) write_file("tokenizer.json", body, n);
  if (mode == 3) write_file("tokenizer_config.json", body, n);
  wren_fuzz::expect_wren_errors(open_folder);
  return 0;
}
