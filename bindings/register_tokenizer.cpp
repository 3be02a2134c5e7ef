// Tokenizer and Detokenizer: thin bindings over cpp/tokenizer/tokenizer.h.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "bindings/args.h"
#include "bindings/register.h"
#include "format/tensor_source.h"
#include "tokenizer/tokenizer.h"
#include "util/errors.h"

namespace py = pybind11;

namespace wren::py_bind {
namespace {

// Inputs at least this long are encoded/decoded with the GIL released.
constexpr size_t kReleaseGilBytes = 2048;

// UTF-8 bytes -> str, ill-formed sequences replaced by U+FFFD.
py::str to_str(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

bool in_range(const Tokenizer& t, int64_t id) { return id >= 0 && id < t.n_vocab(); }

int32_t checked_id(const Tokenizer& t, int64_t id) {
  if (!in_range(t, id))
    throw InvalidArgument(str_cat("token id ", id, " is out of range (vocabulary size ", t.n_vocab(), ")"));
  return static_cast<int32_t>(id);
}

std::vector<int32_t> checked_ids(const Tokenizer& t, const std::vector<int64_t>& ids) {
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (int64_t id : ids) out.push_back(checked_id(t, id));
  return out;
}

}  // namespace

void register_tokenizer(py::module_& m) {
  py::class_<Tokenizer>(m, "Tokenizer", R"doc(
Tokenizer read from a GGUF file's ``tokenizer.ggml.*`` metadata: byte-level BPE (``gpt2``) or
SentencePiece BPE (``llama``).

Matches llama.cpp and Hugging Face ``tokenizers`` token for token. Thread-safe; encode and decode
release the GIL on long inputs.

Args:
    path: a GGUF file (only its metadata is read).

Raises:
    FormatError: the vocabulary is missing or inconsistent (names the file and key).
    UnsupportedError: the tokenizer model or pre-tokenizer is not implemented (names it).

Example:
    >>> tok = _core.Tokenizer("SmolLM2-135M-Instruct.Q4_1.gguf")
    >>> tok.decode(tok.encode("Hello world"))
    'Hello world'
)doc")
      .def(py::init([](const std::string& path) {
             py::gil_scoped_release release;
             const std::unique_ptr<TensorSource> source = open_model_source(path);
             return Tokenizer::from_source(*source);
           }),
           py::arg("path"))
      .def(
          "encode",
          [](const Tokenizer& t, py::handle text, bool add_bos, bool parse_special) {
            const std::string utf8 = native_str(text, "text");
            if (utf8.size() < kReleaseGilBytes) return t.encode(utf8, add_bos, parse_special);
            py::gil_scoped_release release;
            return t.encode(utf8, add_bos, parse_special, [] { return python_interrupt_pending(); });
          },
          py::arg("text"), py::kw_only(), py::arg("add_bos") = true, py::arg("parse_special") = true,
          R"doc(Text to token ids.

Args:
    text: the text (str, encoded as UTF-8).
    add_bos: add the special tokens the model asks for: BOS (``tokenizer.ggml.add_bos_token``),
        EOS (``tokenizer.ggml.add_eos_token``).
    parse_special: control tokens written in the text (``<|im_start|>``) become those tokens;
        when False they are tokenized as plain text.

Returns:
    list[int]: the token ids.
)doc")
      .def(
          "decode",
          [](const Tokenizer& t, py::handle ids, bool skip_special) {
            const std::vector<int32_t> ids32 = checked_ids(t, native_int_list<int64_t>(ids, "token id"));
            std::string bytes;
            {
              std::optional<py::gil_scoped_release> release;
              if (ids32.size() >= kReleaseGilBytes / 4) release.emplace();
              bytes = t.decode(ids32, skip_special);
            }
            return to_str(bytes);
          },
          py::arg("ids"), py::kw_only(), py::arg("skip_special") = false,
          R"doc(Token ids to text.

Args:
    ids: token ids.
    skip_special: leave out control tokens.

Returns:
    str: the text; bytes that are not valid UTF-8 become U+FFFD.

Raises:
    ValueError: an id is out of range.
)doc")
      .def(
          "token_bytes",
          [](const Tokenizer& t, py::handle h) {
            const std::string b = t.token_bytes(checked_id(t, native_int<int64_t>(h, "id")));
            return py::bytes(b.data(), b.size());
          },
          py::arg("id"), "The raw bytes one token stands for (a control token: its text).")
      .def(
          "token_text",
          [](const Tokenizer& t, py::handle h) { return to_str(t.token_text(checked_id(t, native_int<int64_t>(h, "id")))); },
          py::arg("id"), "The token's text as stored in the vocabulary (byte-level form).")
      .def(
          "token_type",
          [](const Tokenizer& t, py::handle h) {
            return static_cast<int>(t.token_type(checked_id(t, native_int<int64_t>(h, "id"))));
          },
          py::arg("id"),
          "The token's type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.")
      .def("token_id", [](const Tokenizer& t, py::handle text) { return t.token_id(native_str(text, "text")); },
           py::arg("text"),
           "Id of the token whose vocabulary text is exactly `text`, or -1.")
      .def(
          "is_eog",
          [](const Tokenizer& t, py::handle h) {
            const int64_t id = native_int<int64_t>(h, "id");
            return in_range(t, id) && t.is_eog(static_cast<int32_t>(id));
          },
          py::arg("id"), "True for end-of-generation tokens (EOS, EOT, <|im_end|>, ...).")
      .def(
          "is_control",
          [](const Tokenizer& t, py::handle h) {
            const int64_t id = native_int<int64_t>(h, "id");
            return in_range(t, id) && t.is_control(static_cast<int32_t>(id));
          },
          py::arg("id"), "True for control tokens.")
      .def_property_readonly("n_vocab", &Tokenizer::n_vocab)
      .def_property_readonly("bos_id", &Tokenizer::bos_id, "BOS token id, or -1.")
      .def_property_readonly("eos_id", &Tokenizer::eos_id, "EOS token id, or -1.")
      .def_property_readonly("add_bos", &Tokenizer::add_bos,
                             "Whether the model asks for BOS at the start of a prompt.")
      .def_property_readonly("pre", &Tokenizer::pre_name,
                             "The pre-tokenizer name (tokenizer.ggml.pre; 'default' when absent).")
      .def_property_readonly("model", &Tokenizer::model_name,
                             "The tokenizer model (tokenizer.ggml.model): 'gpt2', 'llama', ...")
      .def("__len__", &Tokenizer::n_vocab)
      .def("__repr__", [](const Tokenizer& t) {
        return str_cat("<wrenlm Tokenizer model='", t.model_name(), "' pre='", t.pre_name(),
                       "' n_vocab=", t.n_vocab(), ">");
      });

  py::class_<Detokenizer>(m, "Detokenizer", R"doc(
Turns token ids, one at a time, into text pieces that never split a UTF-8 character.

Args:
    tokenizer: the Tokenizer (kept alive by this object).
    skip_special: leave out control tokens.

Example:
    >>> d = _core.Detokenizer(tok)
    >>> text = "".join(d.push(i) for i in ids) + d.flush()
)doc")
      .def(py::init<const Tokenizer&, bool>(), py::arg("tokenizer"), py::kw_only(),
           py::arg("skip_special") = true, py::keep_alive<1, 2>())
      .def(
          "push",
          [](Detokenizer& d, py::handle id) {
            return to_str(d.push(native_int<int32_t>(id, "token id")));
          },
          py::arg("id"),
          R"doc(Adds one token; returns the text it completes (possibly empty).

Raises:
    ValueError: the id is out of range.
)doc")
      .def(
          "flush", [](Detokenizer& d) { return to_str(d.flush()); },
          "Returns the bytes still held back (an incomplete character becomes U+FFFD) and clears them.")
      .def("reset", &Detokenizer::reset, "Drops anything held back.");
}

}  // namespace wren::py_bind
