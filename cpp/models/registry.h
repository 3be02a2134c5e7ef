// Architecture name (general.architecture) -> factory. A new family adds one line here.
#pragma once

#include <memory>
#include <string>

#include "models/model.h"

namespace wren {

using ModelFactory = std::unique_ptr<Model> (*)(const TensorSource& f, const std::string& arch, ThreadPool& pool,
                                                int64_t n_ctx);

std::unique_ptr<Model> make_llama(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx);
std::unique_ptr<Model> make_bert(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx);
std::unique_ptr<Model> make_bloom(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx);
std::unique_ptr<Model> make_gpt2(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx);
std::unique_ptr<Model> make_gpt_neo(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx);
std::unique_ptr<Model> make_qwen2(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx);
std::unique_ptr<Model> make_gemma(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx);
std::unique_ptr<Model> make_phi3(const TensorSource& f, const std::string& arch, ThreadPool& pool, int64_t n_ctx);

}  // namespace wren
