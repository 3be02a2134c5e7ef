// Engine (a loaded model) and Generator (one generation in progress). Compute runs with the GIL
// released and checks for Ctrl-C between layers.
#include <algorithm>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/args.h"
#include "bindings/register.h"
#include "runtime/engine.h"
#include "runtime/generator.h"
#include "runtime/perplexity.h"
#include "runtime/scheduler.h"
#include "runtime/session_file.h"
#include "util/blas.h"
#include "util/errors.h"
#include "util/thread_pool.h"

namespace py = pybind11;

namespace wren::py_bind {
namespace {

const CancelFn kCancelOnSignal = [] { return python_interrupt_pending(); };

py::str utf8(const std::string& s) {
  return py::reinterpret_steal<py::str>(PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace"));
}

void check_fits_context(const Engine& e, int64_t n) {
  if (n > e.n_ctx())
    throw ContextOverflowError(str_cat(n, " tokens exceed the context window n_ctx=", e.n_ctx(),
                                       "; load the model with a larger n_ctx or shorten the input"));
}

}  // namespace

namespace {
py::list logprob_list(const std::vector<TokenLogprob>& v) {
  py::list out;
  for (const TokenLogprob& t : v) out.append(py::make_tuple(t.id, t.logprob, t.top));
  return out;
}
}  // namespace

void register_model(py::module_& m) {
  m.attr("MAX_THREADS") = ThreadPool::kMaxThreads;  // every thread count is checked against it
  py::class_<Engine>(m, "Engine", "A loaded model: file, tokenizer, network, thread pool.")
      .def(py::init([](const std::string& path, int64_t n_ctx, int n_threads, const std::string& kv_cache,
                       const std::vector<std::pair<std::string, float>>& lora, double cache_mb) {
             const KvDtype kv = parse_kv_dtype(kv_cache);  // before the (slow) load
             WREN_CHECK(cache_mb >= 0 && cache_mb <= 1 << 24, InvalidArgument, "cache_mb must be in 0..16M, got ",
                        cache_mb);
             std::vector<LoraSpec> specs;
             for (const auto& [p, scale] : lora) specs.push_back({p, scale});
             py::gil_scoped_release nogil;
             return std::make_unique<Engine>(path, n_ctx, n_threads, kv, specs, kCancelOnSignal,
                                             static_cast<size_t>(cache_mb * (1 << 20)));
           }), py::arg("path"), py::kw_only(), py::arg("n_ctx") = 0, py::arg("n_threads") = 0,
           py::arg("kv_cache") = "f16", py::arg("lora") = std::vector<std::pair<std::string, float>>{},
           py::arg("cache_mb") = 0.0,
           "lora: (adapter path, scale) pairs, applied at run time beside the weights they update.\n"
           "cache_mb: budget of the prefix cache that generations start from (0: off).")
      .def("prepare", [](Engine& e, const py::object& progress) {
             // Called on this thread between slices of the work: the GIL is taken only for the call.
             const ProgressFn report = [&progress](uint64_t done, uint64_t total) {
               py::gil_scoped_acquire gil;
               if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // Ctrl-C: KeyboardInterrupt
               if (!progress.is_none()) progress(done, total);  // its exception propagates as is
             };
             py::gil_scoped_release nogil;
             e.prepare(report);
           }, py::kw_only(), py::arg("progress") = py::none(),
           "Finishes loading now (packs the weights the first forward pass would otherwise pack).\n"
           "progress: None or a callable(done, total) in bytes, called about every 1% on this thread;\n"
           "an exception it raises (or Ctrl-C) stops the work between two matrices, keeping those done.")
      .def_property_readonly("pending_prepare_bytes", [](Engine& e) {
             py::gil_scoped_release nogil;  // it waits for the engine's lock, which prepare() holds while it calls Python
             return e.pending_prepare_bytes();
           }, "Bytes prepare() still has to write (0 once the weights are ready).")
      .def_property_readonly("prefix_cache", [](Engine& e) {
        py::dict d;
        d["entries"] = e.prefix_cache().entries();
        d["bytes"] = e.prefix_cache().bytes();
        d["budget"] = e.prefix_cache().budget();
        return d;
      }, "The prefix cache: entries, bytes of their KV pages, budget in bytes.")
      .def("clear_prefix_cache", [](Engine& e) { e.prefix_cache().clear(); }, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("n_ctx", &Engine::n_ctx)
      .def_property_readonly("kv_cache", [](const Engine& e) { return kv_dtype_name(e.kv_dtype()); })
      .def_property_readonly("n_threads", &Engine::n_threads)
      .def_property_readonly("info", [](const Engine& e) {
        const ModelInfo& i = e.info();
        py::dict d;
        d["architecture"] = i.architecture;
        d["name"] = i.name;
        d["quant"] = i.quant;
        d["n_params"] = i.n_params;
        d["n_vocab"] = i.n_vocab;
        d["n_ctx_train"] = i.n_ctx_train;
        d["n_layers"] = i.n_layers;
        d["dim"] = i.dim;
        d["causal"] = i.causal;
        d["kv_dim"] = i.kv_dim;
        d["sliding_window"] = i.window;
        d["n_sliding_layers"] = std::count(i.sliding.begin(), i.sliding.end(), true);
        d["file_size"] = e.file().file_size();
        py::dict types;  // weight type name -> bytes of the file's tensors of that type
        for (const GgufTensor& t : e.file().tensors()) {
          const py::str name(dtype_name(t.dtype));
          types[name] = (types.contains(name) ? types[name].cast<uint64_t>() : 0) + t.nbytes;
        }
        d["weight_types"] = types;
        py::list loras;
        for (const LoraAdapter& a : e.loras()) {
          py::dict l;
          l["path"] = a.path;
          l["format"] = a.format;
          l["scale"] = a.scale;
          l["alpha"] = a.alpha;
          l["rank"] = a.max_rank();
          py::list targets;
          for (const LoraUpdate& u : a.updates) targets.append(u.target);
          l["targets"] = targets;
          loras.append(l);
        }
        d["lora"] = loras;
        d["lora_bytes"] = e.lora_bytes();
        return d;
      })
      .def_property_readonly("chat_template", [](const Engine& e) -> py::object {
        const GgufValue* v = e.file().find("tokenizer.chat_template");
        if (!v || v->type != GgufType::STRING) return py::none();
        return utf8(v->s);
      })
      .def("tokenize", [](const Engine& e, py::handle text, bool add_bos, bool special) {
        const std::string utf8_text = native_str(text, "text");
        py::gil_scoped_release nogil;
        return e.tokenizer().encode(utf8_text, add_bos, special, kCancelOnSignal);
      }, py::arg("text"), py::kw_only(), py::arg("add_bos") = true, py::arg("special") = true)
      .def("detokenize", [](const Engine& e, const std::vector<int32_t>& ids, bool skip_special) {
        std::string s;
        {
          py::gil_scoped_release nogil;
          s = e.tokenizer().decode(ids, skip_special);
        }
        return utf8(s);
      }, py::arg("ids"), py::kw_only(), py::arg("skip_special") = false)
      .def("token_bytes", [](const Engine& e, int32_t id) { return py::bytes(e.tokenizer().token_bytes(id)); })
      .def_property_readonly("bos_id", [](const Engine& e) { return e.tokenizer().bos_id(); })
      .def_property_readonly("add_bos", [](const Engine& e) { return e.tokenizer().add_bos(); })
      .def_property_readonly("eos_id", [](const Engine& e) { return e.tokenizer().eos_id(); })
      .def("is_eog", [](const Engine& e, py::handle id) {
        const int64_t i = native_int<int64_t>(id, "token_id");
        return i >= 0 && i < e.tokenizer().n_vocab() && e.tokenizer().is_eog(static_cast<int32_t>(i));
      })
      .def("logits", [](Engine& e, const std::vector<int32_t>& ids, bool exact) {
        WREN_CHECK(!ids.empty(), InvalidArgument, "logits() needs at least one token id");
        const int64_t n = static_cast<int64_t>(ids.size()), v = e.info().n_vocab;
        check_fits_context(e, n);  // before the (n, n_vocab) array is allocated
        py::array_t<float> out({n, v});
        float* dst = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          auto s = e.new_session();
          e.eval(*s, ids.data(), n, dst, kCancelOnSignal, exact);
        }
        return out;
      }, py::arg("ids"), py::kw_only(), py::arg("exact") = true,
         "Logits (len(ids), n_vocab) of a fresh context fed ids.")
      .def("token_nll", [](Engine& e, const std::vector<int32_t>& ids, int64_t first, bool exact) {
        std::vector<double> nll;
        {
          py::gil_scoped_release nogil;
          nll = token_nll(e, ids.data(), static_cast<int64_t>(ids.size()), first, kCancelOnSignal, exact);
        }
        return py::array_t<double>(static_cast<py::ssize_t>(nll.size()), nll.data());
      }, py::arg("ids"), py::kw_only(), py::arg("first"), py::arg("exact") = false,
         "-log p(ids[k+1] | ids[:k+1]) for k in [first, len(ids)-1), from a fresh context.")
      .def("hidden_states", [](Engine& e, const std::vector<int32_t>& ids, bool exact) {
        WREN_CHECK(!ids.empty(), InvalidArgument, "hidden_states() needs at least one token id");
        const int64_t n = static_cast<int64_t>(ids.size());
        check_fits_context(e, n);
        py::array_t<float> out({n, e.info().dim});
        float* dst = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          e.hidden_states(ids.data(), n, dst, kCancelOnSignal, exact);
        }
        return out;
      }, py::arg("ids"), py::kw_only(), py::arg("exact") = true,
         "Final hidden states (len(ids), dim) of a fresh context fed ids.")
      .def_property_readonly("add_eos_token", [](const Engine& e) {
        return e.file().get_bool("tokenizer.ggml.add_eos_token", false);
      })
      .def_property_readonly("pooling", [](const Engine& e) {
        static const char* names[] = {"none", "mean", "cls", "last"};
        return names[static_cast<int>(e.pooling())];
      })
      .def("embed", [](Engine& e, const std::vector<std::vector<int32_t>>& seqs, const std::string& pooling,
                       bool normalize) {
        Engine::Pooling p;
        if (pooling == "mean") p = Engine::Pooling::kMean;
        else if (pooling == "cls") p = Engine::Pooling::kCls;
        else if (pooling == "last") p = Engine::Pooling::kLast;
        else throw InvalidArgument(str_cat("pooling must be 'mean', 'cls' or 'last', got '", pooling, "'"));
        const int64_t n = static_cast<int64_t>(seqs.size());
        py::array_t<float> out({n, e.info().dim});
        float* dst = out.mutable_data();
        {
          py::gil_scoped_release nogil;
          e.embed(seqs, p, normalize, dst, kCancelOnSignal);
        }
        return out;
      }, py::arg("seqs"), py::kw_only(), py::arg("pooling"), py::arg("normalize"),
         "One pooled vector per token-id sequence: (len(seqs), dim) float32.")
      .def_property_readonly("scheduler_stats", [](Engine& e) {
        const Scheduler::Stats s = e.scheduler().stats();
        py::dict d;
        d["passes"] = s.passes;
        d["tokens"] = s.tokens;
        d["max_sequences"] = s.max_sequences;
        return d;
      }, "Continuous batching counters: forward passes run for generations, tokens they took, and the\n"
         "most generations one pass served.")
      .def("session", [](const Engine& e) { return e.new_session(); }, py::keep_alive<0, 1>(),
           "A new, empty sequence (its own KV cache, pages from this engine's pool).")
      .def_property_readonly("kv_bytes", [](const Engine& e) { return e.kv_pool().bytes_in_use(); },
                             "Bytes of KV-cache pages held by all sequences now.")
      .def_property_readonly("kv_peak_bytes", [](const Engine& e) { return e.kv_pool().peak_bytes(); },
                             "The most KV-cache page bytes held at once so far.")
      .def("eval_batch", [](Engine& e, const py::list& items, bool exact) {
        const int64_t v = e.info().n_vocab;
        std::vector<Session*> sessions;
        std::vector<std::vector<int32_t>> ids;
        std::vector<bool> all;
        for (py::handle item : items) {
          const auto t = item.cast<py::tuple>();
          WREN_CHECK(t.size() == 3, InvalidArgument, "eval_batch: each item is (session, ids, all_logits)");
          sessions.push_back(t[0].cast<Session*>());
          WREN_CHECK(sessions.back() != nullptr, InvalidArgument, "eval_batch: a session is None");
          ids.push_back(native_int_list<int32_t>(t[1], "token id"));
          all.push_back(PyObject_IsTrue(t[2].ptr()) == 1);
          check_fits_context(e, static_cast<int64_t>(ids.back().size()));  // before (n, n_vocab) is allocated
        }
        std::vector<py::array_t<float>> outs;
        std::vector<EvalRequest> requests;
        for (size_t i = 0; i < ids.size(); ++i) {
          const int64_t n = static_cast<int64_t>(ids[i].size());
          outs.push_back(all[i] ? py::array_t<float>({n, v}) : py::array_t<float>(v));
          requests.push_back(EvalRequest{sessions[i], ids[i].data(), n, all[i] ? outs[i].mutable_data() : nullptr});
        }
        {
          py::gil_scoped_release nogil;
          e.eval_batch(requests, kCancelOnSignal, exact);
        }
        py::list result;
        for (size_t i = 0; i < ids.size(); ++i) {
          if (!all[i]) std::copy(sessions[i]->logits.begin(), sessions[i]->logits.end(), outs[i].mutable_data());
          result.append(outs[i]);
        }
        return result;
      }, py::arg("items"), py::kw_only(), py::arg("exact") = false,
         "Appends each (session, ids, all_logits) item's ids to its session, all in shared forward passes.\n"
         "Returns per item the logits (len(ids), n_vocab) of every token, or (n_vocab) of the last.")
      .def("generator", [](Engine& e, py::handle prompt, py::handle max_tokens, py::handle temperature,
                           py::handle top_k, py::handle top_p, py::handle min_p, py::handle repeat_penalty,
                           py::handle repeat_last_n, py::handle seed, py::handle stop, py::handle ignore_eos,
                           py::handle presence_penalty, py::handle frequency_penalty, py::handle logit_bias,
                           py::handle logprobs, py::handle echo) {
        // Every argument is converted here, against its native type (bindings/args.h).
        GenerateOptions o;
        o.max_tokens = max_tokens.is_none() ? -1 : native_int<int64_t>(max_tokens, "max_tokens");
        WREN_CHECK(o.max_tokens == -1 || o.max_tokens >= 1, InvalidArgument, "max_tokens must be >= 1 or None, got ",
                   o.max_tokens);
        o.sampling.temperature = native_float32(temperature, "temperature");
        o.sampling.top_k = native_int<int32_t>(top_k, "top_k");
        o.sampling.top_p = native_float32(top_p, "top_p");
        o.sampling.min_p = native_float32(min_p, "min_p");
        o.sampling.repeat_penalty = native_float32(repeat_penalty, "repeat_penalty");
        o.sampling.repeat_last_n = native_int<int32_t>(repeat_last_n, "repeat_last_n");
        if (!seed.is_none()) o.sampling.seed = native_int<uint64_t>(seed, "seed");
        if (PyUnicode_Check(stop.ptr()) || !PySequence_Check(stop.ptr()))
          throw InvalidArgument("stop must be a list of strings");
        for (py::handle s : py::reinterpret_borrow<py::sequence>(stop)) o.stop.push_back(native_str(s, "stop"));
        o.ignore_eos = PyObject_IsTrue(ignore_eos.ptr()) == 1;
        o.sampling.presence_penalty = native_float32(presence_penalty, "presence_penalty");
        o.sampling.frequency_penalty = native_float32(frequency_penalty, "frequency_penalty");
        if (!logit_bias.is_none()) {
          if (!PyDict_Check(logit_bias.ptr())) throw InvalidArgument("logit_bias must be a dict {token id: bias}");
          for (const auto& [id, bias] : py::reinterpret_borrow<py::dict>(logit_bias))
            o.sampling.logit_bias.emplace_back(native_int<int32_t>(id, "logit_bias token id"),
                                               native_float32(bias, "logit_bias value"));
        }
        o.logprobs = logprobs.is_none() ? -1 : native_int<int32_t>(logprobs, "logprobs");
        WREN_CHECK(logprobs.is_none() || o.logprobs >= 0, InvalidArgument, "logprobs must be >= 0 or None, got ",
                   o.logprobs);
        o.echo = PyObject_IsTrue(echo.ptr()) == 1;
        return std::make_unique<Generator>(e, native_int_list<int32_t>(prompt, "prompt token id"), std::move(o));
      }, py::arg("prompt"), py::kw_only(), py::arg("max_tokens"), py::arg("temperature"), py::arg("top_k"),
         py::arg("top_p"), py::arg("min_p"), py::arg("repeat_penalty"), py::arg("repeat_last_n"), py::arg("seed"),
         py::arg("stop"), py::arg("ignore_eos"), py::arg("presence_penalty") = 0.0f,
         py::arg("frequency_penalty") = 0.0f, py::arg("logit_bias") = py::none(), py::arg("logprobs") = py::none(),
         py::arg("echo") = false, py::keep_alive<0, 1>());

  m.def("save_session", [](const Engine& e, const Session& s, const std::vector<int32_t>& tokens) {
    std::vector<uint8_t> bytes;
    {
      py::gil_scoped_release nogil;
      bytes = save_session(e, s, tokens);
    }
    return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }, py::arg("engine"), py::arg("session"), py::arg("tokens"),
     "The bytes of a session file (runtime/session_file.h) for session, whose cache holds tokens[:n_past].");
  m.def("max_session_bytes", &max_session_bytes, py::arg("engine"));
  m.def("load_session", [](const Engine& e, py::bytes data, const std::string& name) {
    const std::string_view v = data;
    std::vector<int32_t> tokens;
    std::unique_ptr<Session> s;
    {
      py::gil_scoped_release nogil;
      s = load_session(e, reinterpret_cast<const uint8_t*>(v.data()), v.size(), name, &tokens);
    }
    return py::make_tuple(std::move(s), tokens);
  }, py::arg("engine"), py::arg("data"), py::arg("name"),
     "(session, tokens) from a session file's bytes; FormatError for a bad or foreign one.");

  py::class_<Session>(m, "Session", "One sequence's state: its KV cache and last logits.")
      .def_property_readonly("n_past", &Session::n_past, "Positions in the cache.")
      .def_property_readonly("kv_bytes", [](const Session& s) { return s.cache.bytes(); },
                             "Bytes of the KV-cache pages this sequence holds (shared ones counted in full).")
      .def("truncate", [](Session& s, int64_t n) { s.cache.truncate(n); }, py::arg("n"),
           "Forgets every position from n on.")
      .def("share_prefix", [](const Session& s, Session& dst, int64_t n) { s.cache.share_prefix(dst.cache, n); },
           py::arg("dst"), py::arg("n"),
           "Makes dst start with this sequence's first n positions, sharing their pages (copied on write).");

  py::class_<Generator>(m, "Generator", "One generation in progress; next() yields text pieces.")
      .def("next", [](Generator& g) -> py::object {
        std::optional<std::string> piece;
        {
          py::gil_scoped_release nogil;
          piece = g.next(kCancelOnSignal);
        }
        if (!piece) return py::none();
        return utf8(*piece);
      }, "The next text piece ('' while held back), or None when finished.")
      .def("start", &Generator::start, py::arg("run_ahead") = false, py::call_guard<py::gil_scoped_release>(),
           "Submits it to the engine's scheduler now (else the first next() does). run_ahead: it runs to its\n"
           "end without waiting for next() (collecting several generations at once).")
      .def("cancel", &Generator::cancel, py::call_guard<py::gil_scoped_release>(),
           "Stops the generation within one token; safe from another thread while next() runs.")
      .def_property_readonly("finish_reason", &Generator::finish_reason)
      .def_property_readonly("n_prompt_tokens", &Generator::n_prompt_tokens)
      .def_property_readonly("n_generated", &Generator::n_generated)
      .def_property_readonly("n_cached_tokens", &Generator::n_cached_tokens,
                             "Prompt tokens whose keys and values were reused, not computed")
      .def("reuse_prefix", &Generator::reuse_prefix, py::arg("session"), py::arg("n"), py::arg("aligned") = true,
           py::call_guard<py::gil_scoped_release>(),
           "Before it starts: take the first n prompt positions from session (which the caller knows hold\n"
           "the same tokens), sharing its KV pages. Returns the positions reused. aligned=False: as many\n"
           "as possible (a session continuing itself), not only those a cold run computes alike.")
      .def("keep_session", &Generator::keep_session,
           "Before it starts: keep the KV cache when finished, for take_session().")
      .def("take_session", &Generator::take_session,
           "Once finished (with keep_session()): the session, holding prompt + generated tokens up to n_past.")
      .def_property_readonly("tokens", &Generator::generated_tokens)
      .def_property_readonly("logprobs", [](const Generator& g) { return logprob_list(g.logprobs()); },
                             "[(id, logprob, [(id, logprob), ...]), ...] of the generated tokens (logprobs >= 0)")
      .def_property_readonly("prompt_logprobs", [](const Generator& g) { return logprob_list(g.prompt_logprobs()); },
                             "The same for the prompt tokens (echo); the first has logprob NaN");

  m.def("default_thread_count", &default_thread_count);
}

}  // namespace wren::py_bind
