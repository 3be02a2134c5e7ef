#include "format/hf_folder.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "format/hf_arch.h"
#include "tensor/fp16.h"
#include "util/errors.h"

namespace wren {
namespace {

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw FormatError(str_cat(dir, ": cannot open the folder"));
  while (const dirent* e = ::readdir(d)) out.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool is_pickle_weights(const std::string& name) {
  return ends_with(name, ".bin") || ends_with(name, ".pt") || ends_with(name, ".pth") || ends_with(name, ".ckpt");
}

}  // namespace

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string path_join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

// ---- HfWriter -------------------------------------------------------------------------------

void HfWriter::put(const std::string& key, GgufValue v) {
  for (auto& kv : staged_)
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  staged_.emplace_back(key, std::move(v));
}

void HfWriter::commit() {
  for (auto& kv : staged_) f_.add_value(kv.first, std::move(kv.second));
  staged_.clear();
}

void HfWriter::put_u32(const std::string& key, uint64_t v) {
  GgufValue g;
  g.type = GgufType::U32;
  g.u = v;
  put(key, std::move(g));
}

void HfWriter::put_i32(const std::string& key, int64_t v) {
  GgufValue g;
  g.type = GgufType::I32;
  g.i = v;
  put(key, std::move(g));
}

void HfWriter::put_f32(const std::string& key, double v) {
  GgufValue g;
  g.type = GgufType::F32;
  g.f = static_cast<double>(static_cast<float>(v));  // what a GGUF float32 field holds
  put(key, std::move(g));
}

void HfWriter::put_bool(const std::string& key, bool v) {
  GgufValue g;
  g.type = GgufType::BOOL;
  g.u = v ? 1 : 0;
  put(key, std::move(g));
}

void HfWriter::put_str(const std::string& key, const std::string& v) {
  GgufValue g;
  g.type = GgufType::STRING;
  g.s = v;
  put(key, std::move(g));
}

const SafetensorsTensor* HfWriter::hf_tensor(const std::string& name) const {
  auto it = f_.hf_index_.find(name);
  return it == f_.hf_index_.end() ? nullptr : it->second;
}

std::vector<const SafetensorsTensor*> HfWriter::hf_tensors() const {
  std::vector<const SafetensorsTensor*> out;
  for (const auto& kv : f_.hf_index_) out.push_back(kv.second);
  return out;
}

const std::string& HfWriter::dir() const { return f_.path(); }

void HfWriter::fail(const std::string& field, const std::string& what) const { f_.fail(field, what); }

void HfWriter::map(const std::string& gguf_name, const SafetensorsTensor& t) {
  const SafetensorsFile* shard = f_.shard_of(t.data);
  if (shard) shard->require_supported(t);
  if (t.shape.empty() || t.n_elements() == 0)
    f_.fail("tensor '" + t.name + "'", "expected a non-empty tensor of rank 1..4");
  GgufTensor g;
  g.name = gguf_name;
  g.dtype = t.dtype;
  g.shape.assign(t.shape.rbegin(), t.shape.rend());
  g.nbytes = t.nbytes;
  g.data = t.data;
  f_.add_tensor(std::move(g));
}

void HfWriter::own(const std::string& gguf_name, std::vector<uint64_t> shape, std::vector<float> data) {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  if (n != data.size()) f_.fail("tensor '" + gguf_name + "'", "internal: converted size does not match its shape");
  f_.owned_.push_back(std::make_unique<std::vector<float>>(std::move(data)));
  GgufTensor g;
  g.name = gguf_name;
  g.dtype = DType::F32;
  g.shape = std::move(shape);
  g.nbytes = n * sizeof(float);
  g.data = reinterpret_cast<const uint8_t*>(f_.owned_.back()->data());
  f_.add_tensor(std::move(g));
}

std::vector<float> HfWriter::to_f32(const SafetensorsTensor& t) const {
  if (const SafetensorsFile* shard = f_.shard_of(t.data)) shard->require_supported(t);
  const uint64_t n = t.n_elements();
  std::vector<float> out(static_cast<size_t>(n));
  switch (t.dtype) {
    case DType::F32: std::memcpy(out.data(), t.data, n * sizeof(float)); break;
    case DType::F16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = fp16_to_f32(h);
      }
      break;
    case DType::BF16:
      for (uint64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      break;
    default: f_.fail("tensor '" + t.name + "'", "internal: not a float tensor");
  }
  return out;
}

// ---- HfFolder -------------------------------------------------------------------------------

bool HfFolder::looks_like_model_folder(const std::string& dir) {
  if (is_regular_file(path_join(dir, "config.json"))) return true;
  for (const std::string& n : list_dir(dir))
    if (ends_with(n, ".safetensors") || is_pickle_weights(n)) return true;
  return false;
}

HfFolder::HfFolder(const std::string& dir) : TensorSource(dir) {
  open_weights();
  const std::string config_path = path_join(dir, "config.json");
  if (!is_regular_file(config_path))
    fail("config.json", "missing: a Hugging Face model folder needs config.json beside its weights");
  const JsonDocument config = read_json_file(config_path, uint64_t(16) << 20);
  config.root->as_object();
  HfWriter w(*this);
  translate_model(*config.root, w);
  translate_tokenizer(dir, *config.root, w);
  w.commit();
}

HfFolder::~HfFolder() = default;

void HfFolder::open_weights() {
  const std::string& dir = path();
  const std::vector<std::string> names = list_dir(dir);
  const std::string index_path = path_join(dir, "model.safetensors.index.json");
  const std::string single_path = path_join(dir, "model.safetensors");
  auto add_shard = [&](const std::string& file) -> SafetensorsFile& {
    for (auto& s : shards_)
      if (s->path() == file) return *s;
    shards_.push_back(std::make_unique<SafetensorsFile>(file));
    bytes_ += shards_.back()->file_size();
    return *shards_.back();
  };
  if (is_regular_file(index_path)) {
    const JsonDocument index = read_json_file(index_path, uint64_t(256) << 20);
    const JsonValue& map = index.root->at("weight_map");
    for (const JsonValue::Member& m : map.as_object()) {
      const std::string& shard = m.second.as_string();
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
        m.second.fail(str_cat("expected a shard file name inside the folder, found '", shard, "'"));
      if (!is_regular_file(path_join(dir, shard))) m.second.fail(str_cat("shard '", shard, "' does not exist"));
      SafetensorsFile& f = add_shard(path_join(dir, shard));
      const SafetensorsTensor* t = f.find(m.first);
      if (!t) m.second.fail(str_cat("shard '", shard, "' does not hold tensor '", m.first, "'"));
      hf_index_[m.first] = t;
    }
    if (hf_index_.empty()) map.fail("expected at least one tensor");
  } else if (is_regular_file(single_path)) {
    SafetensorsFile& f = add_shard(single_path);
    for (const SafetensorsTensor& t : f.tensors()) hf_index_[t.name] = &t;
  } else {
    for (const std::string& n : names)
      if (is_pickle_weights(n))
        fail(n, "PyTorch pickle weights are not loaded (unpickling can run arbitrary code); convert the model "
                "to safetensors first, e.g. with transformers: AutoModel.from_pretrained(dir)."
                "save_pretrained(out_dir, safe_serialization=True)");
    for (const std::string& n : names)
      if (ends_with(n, ".safetensors"))
        fail(n, "expected model.safetensors, or model.safetensors.index.json naming the shards");
    fail("model.safetensors", "missing: no safetensors weights in the folder");
  }
}

const SafetensorsFile* HfFolder::shard_of(const uint8_t* p) const {
  for (const auto& s : shards_)
    if (s->contains(p)) return s.get();
  return nullptr;
}

void HfFolder::check_not_truncated() const {
  for (const auto& s : shards_) s->check_not_truncated();
}

void HfFolder::release(const uint8_t* p, uint64_t n) const {
  if (const SafetensorsFile* s = shard_of(p)) s->release(p, n);
}

}  // namespace wren
