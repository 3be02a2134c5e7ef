#include "runtime/engine.h"

#include <Eigen/Core>
#include <algorithm>
#include <exception>
#include <future>
#include <system_error>
#include <thread>

#include "format/lora_source.h"
#include "runtime/scheduler.h"
#include "util/blas.h"
#include "util/errors.h"

namespace wren {

int default_thread_count() {
  // Physical cores: hardware threads / 2 when SMT is likely, never below 1.
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<int>(hw >= 4 ? hw / 2 : hw);
}

Engine::Engine(const std::string& path, int64_t n_ctx, int n_threads, KvDtype kv_dtype,
               const std::vector<LoraSpec>& loras, const CancelFn& cancel, size_t cache_bytes)
    : kv_dtype_(kv_dtype), prefix_cache_(std::make_unique<PrefixCache>(cache_bytes)) {
  WREN_CHECK(n_ctx >= 0 && n_ctx <= (int64_t(1) << 24), InvalidArgument, "n_ctx must be in 0..16M, got ", n_ctx);
  file_ = open_model_source(path);
  pool_ = std::make_unique<ThreadPool>(n_threads > 0 ? n_threads : default_thread_count());
  // Our pool calls sgemm from each of its threads on separate tiles: OpenBLAS must not add its own.
  blas::set_num_threads(1);
  if (!loras.empty()) {
    auto layered = std::make_unique<LoraSource>(std::move(file_), loras, cancel);
    lora_source_ = layered.get();
    file_ = std::move(layered);
  }
  // The vocabulary (hash maps over ~50k tokens and merges) is built on its own thread while the
  // weights are bound and packed: both only read the parsed file.
  auto load_vocabulary = [this] {
    try {
      return Tokenizer::from_source(*file_);
    } catch (const FormatError& e) {
      throw FormatError(str_cat("loading vocabulary: ", e.what()));
    }
  };
  std::future<std::unique_ptr<Tokenizer>> tokenizer;
  try {
    tokenizer = std::async(std::launch::async, load_vocabulary);
  } catch (const std::system_error&) {  // no thread to spare (process limits): load it here instead
    tokenizer = std::async(std::launch::deferred, load_vocabulary);
  }
  const uint64_t trained = file_->get_uint(file_->get_string("general.architecture") + ".context_length", 2048);
  n_ctx_ = n_ctx > 0 ? n_ctx : static_cast<int64_t>(std::min<uint64_t>(trained, 1 << 20));
  try {
    model_ = load_model(*file_, *pool_, n_ctx_);
  } catch (...) {
    // A broken vocabulary is reported first, as when the two were loaded one after the other.
    const std::exception_ptr model_error = std::current_exception();
    tokenizer.get();
    std::rethrow_exception(model_error);
  }
  try {
    tokenizer_ = tokenizer.get();
  } catch (const UnsupportedError& e) {
    tokenizer_error_ = e.what();  // raised when text is tokenized; token ids still work
  }
  // Every row of the embedding (and of the output head) is a token the model can produce: a vocabulary
  // of another size would fail later, mid-generation, on the first id it does not cover.
  if (tokenizer_)
    WREN_CHECK(model_->info().n_vocab == tokenizer_->n_vocab(), FormatError, path, ": the vocabulary has ",
               tokenizer_->n_vocab(), " tokens but the embedding has ", model_->info().n_vocab,
               " rows (token_embd.weight); they must match");
  // Learned position embeddings end where they end, whatever context was asked for.
  if (model_->info().max_positions > 0) n_ctx_ = std::min(n_ctx_, model_->info().max_positions);
  kv_pool_ = KvPagePool::create(model_->info().kv_layout(kv_dtype_));
}

Engine::~Engine() = default;

void Engine::prepare(const ProgressFn& progress) {
  std::lock_guard<std::mutex> lock(mu_);
  model_->prepare_weights(*pool_, progress);
}

uint64_t Engine::pending_prepare_bytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return model_->pending_weight_bytes();
}

Scheduler& Engine::scheduler() {
  std::call_once(scheduler_once_, [this] { scheduler_ = std::make_unique<Scheduler>(*this); });
  return *scheduler_;
}

const std::vector<LoraAdapter>& Engine::loras() const {
  static const std::vector<LoraAdapter> kNone;
  return lora_source_ ? lora_source_->adapters() : kNone;
}

uint64_t Engine::lora_bytes() const {
  return lora_source_ ? lora_source_->bytes() : 0;
}

const Tokenizer& Engine::tokenizer() const {
  if (!tokenizer_) throw UnsupportedError(tokenizer_error_);
  return *tokenizer_;
}

void Engine::check_tokens(const int32_t* tokens, int64_t n) const {
  const int64_t n_vocab = info().n_vocab;
  for (int64_t i = 0; i < n; ++i)
    WREN_CHECK(tokens[i] >= 0 && tokens[i] < n_vocab, InvalidArgument, "token id ", tokens[i], " at position ", i,
               " is outside the vocabulary [0, ", n_vocab, ")");
}

int64_t chunk_tokens(int64_t left, int64_t room, int64_t cap) {
  if (left <= room) return left;
  if (left - room >= kAttentionPrefillMinRows) return room;
  if (left <= cap) return left;
  const int64_t aligned = (left - kAttentionPrefillMinRows) / kAttentionBlockRows * kAttentionBlockRows;
  return aligned > 0 ? std::min(aligned, cap) : room;
}

void Engine::check_fits(const Session& s, int64_t n) const {
  if (s.n_past() + n > n_ctx_)
    throw ContextOverflowError(str_cat(s.n_past() + n, " tokens (", s.n_past(), " in context + ", n,
                                       " new) exceed the context window n_ctx=", n_ctx_,
                                       "; load the model with a larger n_ctx or shorten the input"));
}

void Engine::eval(Session& s, const int32_t* tokens, int64_t n, float* all_logits, const CancelFn& cancel,
                  bool exact) {
  eval_batch({EvalRequest{&s, tokens, n, all_logits}}, cancel, exact);
}

void Engine::eval_batch(const std::vector<EvalRequest>& requests, const CancelFn& cancel, bool exact) {
  const int64_t n_vocab = info().n_vocab;
  for (size_t i = 0; i < requests.size(); ++i) {
    const EvalRequest& r = requests[i];
    WREN_CHECK(r.session && r.n > 0, InvalidArgument, "no tokens to evaluate");
    check_tokens(r.tokens, r.n);
    check_fits(*r.session, r.n);
    for (size_t j = 0; j < i; ++j)
      WREN_CHECK(requests[j].session != r.session, InvalidArgument, "a session appears twice in one batch");
  }
  file_->check_not_truncated();
  // Passes of at most max_batch tokens: each takes the next tokens of every request that has some
  // left, in request order, until the pass is full.
  const int64_t batch = model_->max_batch();
  std::vector<int64_t> done(requests.size(), 0);
  for (bool more = true; more;) {
    Batch b;
    std::vector<int32_t> tokens;
    std::vector<size_t> which;  // request of each slice
    int64_t room = batch;
    for (size_t i = 0; i < requests.size() && room > 0; ++i) {
      const EvalRequest& r = requests[i];
      if (r.n - done[i] <= 0) continue;
      const int64_t m = chunk_tokens(r.n - done[i], room, room);
      tokens.insert(tokens.end(), r.tokens + done[i], r.tokens + done[i] + m);
      // Every chunk learns where the whole input ends (seq_len), as one eval() of it would.
      const int64_t end = r.session->n_past() - done[i] + r.n;
      b.seqs.push_back(SeqSlice{&r.session->cache, m, std::max(end, r.input_end), r.all_logits != nullptr});
      which.push_back(i);
      room -= m;
    }
    b.tokens = tokens.data();
    {
      std::lock_guard<std::mutex> lock(mu_);
      model_->prepare_weights(*pool_);
      if (b.seqs.size() == 1) {  // one sequence: its logits go straight where they belong
        const EvalRequest& r = requests[which[0]];
        const int64_t m = b.seqs[0].n;
        if (r.all_logits) {
          float* dst = r.all_logits + done[which[0]] * n_vocab;
          model_->forward(b, dst, exact, cancel);
          std::copy(dst + (m - 1) * n_vocab, dst + m * n_vocab, r.session->logits.begin());
        } else {
          model_->forward(b, r.session->logits.data(), exact, cancel);
        }
      } else {
        pass_logits_.resize(static_cast<size_t>(b.n_logit_rows() * n_vocab));  // grows once, then reused
        model_->forward(b, pass_logits_.data(), exact, cancel);
        // Each slice's logits to its request: every row (all_logits), else the last into the session.
        const float* src = pass_logits_.data();
        for (size_t k = 0; k < b.seqs.size(); ++k) {
          const EvalRequest& r = requests[which[k]];
          const int64_t m = b.seqs[k].n;
          if (r.all_logits) {
            std::copy(src, src + m * n_vocab, r.all_logits + done[which[k]] * n_vocab);
            src += (m - 1) * n_vocab;
          }
          std::copy(src, src + n_vocab, r.session->logits.begin());
          src += n_vocab;
        }
      }
      b.advance();  // the pass is complete: its positions count (an interrupted one leaves them out)
    }
    more = false;
    for (size_t k = 0; k < b.seqs.size(); ++k) done[which[k]] += b.seqs[k].n;
    for (size_t i = 0; i < requests.size(); ++i) more = more || done[i] < requests[i].n;
    if (more && cancel && cancel()) throw Interrupted();
  }
}

}  // namespace wren

namespace wren {

void Engine::hidden_states(const int32_t* tokens, int64_t n, float* out, const CancelFn& cancel, bool exact) {
  WREN_CHECK(n > 0, InvalidArgument, "no tokens to evaluate");
  check_tokens(tokens, n);
  if (n > n_ctx_)
    throw ContextOverflowError(str_cat(n, " tokens exceed the context window n_ctx=", n_ctx_,
                                       "; load the model with a larger n_ctx or shorten the input"));
  auto s = new_session();
  hidden_states(*s, tokens, n, out, cancel, exact);
}

void Engine::hidden_states(Session& s, const int32_t* tokens, int64_t n, float* out, const CancelFn& cancel,
                           bool exact) {
  file_->check_not_truncated();
  // An encoder sees its whole input at once; a decoder may take it in batches.
  const int64_t batch = info().causal ? model_->max_batch() : n;
  const int64_t dim = info().dim;
  s.cache.truncate(0);  // a fresh context
  for (int64_t done = 0; done < n; done += batch) {
    const int64_t m = std::min(batch, n - done);
    std::lock_guard<std::mutex> lock(mu_);
    model_->prepare_weights(*pool_);
    const Batch b = Batch::single(tokens + done, m, s.cache, n, false);
    model_->hidden_states(b, out + done * dim, exact, cancel);
    b.advance();
  }
}

Engine::Pooling Engine::pooling() const {
  const std::string key = info().architecture + ".pooling_type";
  const uint64_t declared = file_->get_uint(key, 0);
  if (declared > 3) file_->fail(key, str_cat("unknown pooling type ", declared, " (supported: 0..3: none, mean, cls, last)"));
  if (declared != 0) return static_cast<Pooling>(declared);
  return info().causal ? Pooling::kLast : Pooling::kMean;
}

void Engine::embed(const std::vector<std::vector<int32_t>>& seqs, Pooling pooling, bool normalize, float* out,
                   const CancelFn& cancel) {
  WREN_CHECK(pooling != Pooling::kNone, InvalidArgument, "pooling 'none' gives no single vector per text");
  int64_t longest = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const int64_t n = static_cast<int64_t>(seqs[i].size());
    WREN_CHECK(n > 0, InvalidArgument, "input ", i, " has no tokens");
    if (n > n_ctx_)
      throw ContextOverflowError(str_cat("input ", i, " has ", n, " tokens, more than the context window n_ctx=",
                                         n_ctx_, " (truncate it, or load the model with a larger n_ctx)"));
    check_tokens(seqs[i].data(), n);
    longest = std::max(longest, n);
  }
  const int64_t dim = info().dim;
  std::vector<float> h(static_cast<size_t>(longest * dim));  // (n, dim) hidden states of one input
  auto session = new_session();  // one cache, reused: each input starts a fresh context in it
  for (size_t i = 0; i < seqs.size(); ++i) {
    const int64_t n = static_cast<int64_t>(seqs[i].size());
    hidden_states(*session, seqs[i].data(), n, h.data(), cancel, /*exact=*/false);
    Eigen::Map<Eigen::VectorXf> v(out + static_cast<int64_t>(i) * dim, dim);
    const Eigen::Map<const Eigen::MatrixXf> states(h.data(), dim, n);  // column t: token t
    switch (pooling) {
      case Pooling::kMean: v = states.rowwise().mean(); break;
      case Pooling::kCls: v = states.col(0); break;
      default: v = states.col(n - 1); break;
    }
    if (normalize) {
      const float norm = v.norm();
      if (norm > 0) v /= norm;
    }
    if (cancel && cancel()) throw Interrupted();
  }
}

}  // namespace wren
