// A Hugging Face model folder (config.json + safetensors + tokenizer.json) as a TensorSource: the
// folder is translated into the metadata keys, tensor names and shapes llama.cpp's converter would
// write to GGUF for the same model, so models and tokenizers read it like a GGUF file. Tensors that
// the converter only renames stay in the safetensors mappings; the few it changes (Gemma's norms,
// GPT-2's transposed Conv1D weights, ...) become owned F32 copies. Pickle weights are refused.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "format/json.h"
#include "format/safetensors.h"
#include "format/tensor_source.h"

namespace wren {

class HfFolder;

// What the translation code (format/hf_*.cpp) writes through: metadata, and tensors by HF name.
class HfWriter {
 public:
  explicit HfWriter(HfFolder& f) : f_(f) {}
  void put_u32(const std::string& key, uint64_t v);
  void put_i32(const std::string& key, int64_t v);
  void put_f32(const std::string& key, double v);
  void put_bool(const std::string& key, bool v);
  void put_str(const std::string& key, const std::string& v);
  void put(const std::string& key, GgufValue v);

  // The folder's tensors, by their HF names (across shards); nullptr when absent.
  const SafetensorsTensor* hf_tensor(const std::string& name) const;
  std::vector<const SafetensorsTensor*> hf_tensors() const;
  // Adds a tensor that is the HF tensor as it is (shape reversed into ggml order).
  void map(const std::string& gguf_name, const SafetensorsTensor& t);
  // Adds an owned F32 tensor; shape in ggml order (ne0 first).
  void own(const std::string& gguf_name, std::vector<uint64_t> shape, std::vector<float> data);
  // The HF tensor's values as F32 (a copy), for the transforms that change values.
  std::vector<float> to_f32(const SafetensorsTensor& t) const;

  const std::string& dir() const;
  [[noreturn]] void fail(const std::string& field, const std::string& what) const;
  // Adds the metadata written so far to the folder (a later put of a key replaces an earlier one,
  // as the converter's writer does when a family overrides a common key).
  void commit();

 private:
  HfFolder& f_;
  std::vector<std::pair<std::string, GgufValue>> staged_;
};

class HfFolder : public TensorSource {
 public:
  // FormatError naming the file and field for anything malformed; UnsupportedError for a model type
  // or tokenizer we do not translate.
  explicit HfFolder(const std::string& dir);
  ~HfFolder() override;

  uint64_t file_size() const override { return bytes_; }
  void release(const uint8_t* p, uint64_t n) const override;
  void check_not_truncated() const override;

  // True when dir looks like a model folder (has config.json or any weights file).
  static bool looks_like_model_folder(const std::string& dir);

 private:
  friend class HfWriter;
  void open_weights();
  const SafetensorsFile* shard_of(const uint8_t* p) const;

  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const SafetensorsTensor*> hf_index_;  // HF name -> tensor in its shard
  std::vector<std::unique_ptr<std::vector<float>>> owned_;
  uint64_t bytes_ = 0;
};

// Folder helpers shared by the translation files.
bool is_regular_file(const std::string& path);
std::string path_join(const std::string& dir, const std::string& name);

// Translation of the tokenizer (format/hf_tokenizer.cpp); the model's is format/hf_arch.h.
void translate_tokenizer(const std::string& dir, const JsonValue& config, HfWriter& w);

}  // namespace wren
