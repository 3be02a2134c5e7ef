#include "format/gguf_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/errors.h"

namespace wren {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kVersion = 3;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace

GgufWriter::GgufWriter(std::string path, uint64_t alignment) : path_(std::move(path)), alignment_(alignment) {
  WREN_CHECK(alignment_ > 0 && (alignment_ & (alignment_ - 1)) == 0, InvalidArgument, "GGUF alignment must be a power of two, got ",
             alignment_);
}

GgufWriter::~GgufWriter() {
  if (f_) std::fclose(f_);
}

void GgufWriter::set_value(const std::string& key, GgufValue v) {
  WREN_CHECK(!f_, InvalidArgument, "GgufWriter: metadata after the header");
  for (auto& kv : kv_)
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  kv_.emplace_back(key, std::move(v));
}

void GgufWriter::remove_value(const std::string& key) {
  for (auto it = kv_.begin(); it != kv_.end(); ++it)
    if (it->first == key) {
      kv_.erase(it);
      return;
    }
}

void GgufWriter::add_tensor(const std::string& name, DType type, const std::vector<uint64_t>& shape) {
  WREN_CHECK(!f_, InvalidArgument, "GgufWriter: tensor after the header");
  WREN_CHECK(!shape.empty() && shape.size() <= 4, InvalidArgument, "tensor '", name, "': ", shape.size(), " dimensions");
  const DTypeInfo& info = dtype_info(type);
  WREN_CHECK(shape[0] % info.block_size == 0, InvalidArgument, "tensor '", name, "': row length ", shape[0],
             " is not a multiple of the ", info.name, " block size ", info.block_size);
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  const uint64_t nbytes = n / info.block_size * info.type_size;
  tensors_.push_back({name, type, shape, data_size_, nbytes});
  data_size_ = align_up(data_size_ + nbytes, alignment_);
}

void GgufWriter::put(const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, f_) != n)
    throw WrenError(str_cat(path_, ": write failed after ", written_, " bytes: ", std::strerror(errno)));
  written_ += n;
}

void GgufWriter::pad() {
  static const char zeros[64] = {};
  uint64_t n = align_up(written_, alignment_) - written_;
  while (n) {
    const size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof zeros));
    put(zeros, k);
    n -= k;
  }
}

void GgufWriter::write_header() {
  WREN_CHECK(!f_, InvalidArgument, "GgufWriter: header written twice");
  f_ = std::fopen(path_.c_str(), "wb");
  if (!f_) throw WrenError(str_cat(path_, ": cannot create: ", std::strerror(errno)));
  std::string h;
  auto raw = [&h](const void* p, size_t n) { h.append(static_cast<const char*>(p), n); };
  auto str = [&](const std::string& s) {
    const uint64_t n = s.size();
    raw(&n, 8);
    h += s;
  };
  const uint64_t n_tensors = tensors_.size(), n_kv = kv_.size();
  raw(&kMagic, 4);
  raw(&kVersion, 4);
  raw(&n_tensors, 8);
  raw(&n_kv, 8);
  for (const auto& kv : kv_) {
    str(kv.first);
    const uint32_t t = static_cast<uint32_t>(kv.second.type);
    raw(&t, 4);
    kv.second.encode(&h);
  }
  for (const Entry& e : tensors_) {
    str(e.name);
    const uint32_t n_dims = static_cast<uint32_t>(e.shape.size()), type = static_cast<uint32_t>(e.type);
    raw(&n_dims, 4);
    for (uint64_t d : e.shape) raw(&d, 8);
    raw(&type, 4);
    raw(&e.offset, 8);
  }
  put(h.data(), h.size());
  pad();
  current_ = 0;
  current_done_ = 0;
}

void GgufWriter::write_data(const void* p, size_t n) {
  const auto* bytes = static_cast<const uint8_t*>(p);
  while (n) {
    WREN_CHECK(f_ && current_ < tensors_.size(), InvalidArgument, "GgufWriter: more tensor data than the table declares");
    const Entry& e = tensors_[current_];
    const size_t k = static_cast<size_t>(std::min<uint64_t>(n, e.nbytes - current_done_));
    put(bytes, k);
    bytes += k;
    n -= k;
    current_done_ += k;
    if (current_done_ == e.nbytes) {
      pad();
      ++current_;
      current_done_ = 0;
    }
  }
}

void GgufWriter::finish() {
  WREN_CHECK(f_, InvalidArgument, "GgufWriter: finish before write_header");
  WREN_CHECK(current_ == tensors_.size(), InvalidArgument, "GgufWriter: tensor '",
             current_ < tensors_.size() ? tensors_[current_].name : std::string(), "' is incomplete");
  std::FILE* f = f_;
  f_ = nullptr;
  const bool ok = std::fflush(f) == 0;
  const int err = errno;
  if (std::fclose(f) != 0 || !ok) throw WrenError(str_cat(path_, ": write failed: ", std::strerror(ok ? errno : err)));
}

}  // namespace wren
