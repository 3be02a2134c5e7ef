"""Sentence-transformers folders embed as sentence-transformers embeds them, for any input: the folder's
``max_seq_length`` (inputs longer than it are cut, as its tokenizer truncates), ``do_lower_case``, every
Pooling mode (alone and concatenated, new ``pooling_mode`` and older ``pooling_mode_*`` configs), Dense
modules (activation, bias, residual) and Normalize, in the order ``modules.json`` lists them.

The reference is sentence-transformers itself: ``SentenceTransformer(folder).encode(texts)`` on
- all-MiniLM-L6-v2 (real weights; max_seq_length 256, 512 positions) with a Korean and an English
  paragraph each longer than 256 tokens: cosine >= 0.9999 (the bar test_embeddings.py sets for this
  model; F32 weights reach ~1 - 1e-7, while embedding all tokens instead of the first 256 gives ~0.94);
- tiny random folders built from sentence-transformers' own module classes and saved with
  ``SentenceTransformer.save``, run with a float32 KV cache (the default float16 cache rounds keys and
  values to 11 bits: ~1e-3 relative on these random states; all-MiniLM-L6-v2 above covers it): every
  vector within 1e-4 x max|vector| (+1e-6) of sentence-transformers' (float32 sums in another order:
  measured differences ~1e-6 relative; a wrong pooling, a missing activation or bias, a wrong cut or a
  skipped module is off by far more), which also checks the vectors' lengths where the folder does not
  normalize.
"""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import wrenlm
from conftest import require_module

MIN_COSINE = 0.9999

# 336 tokens for all-MiniLM-L6-v2's WordPiece (the issue's case): longer than max_seq_length 256.
KOREAN_PARAGRAPH = (
    "서울의 오래된 골목길에는 작은 찻집과 헌책방이 모여 있다. 비가 오는 날이면 사람들은 창가 자리에 앉아 "
    "따뜻한 보리차를 마시며 오래된 시집을 천천히 넘긴다. 찻집 주인 할머니는 오십 년 동안 같은 자리에서 "
    "가게를 지켜 왔고, 단골손님들의 이름과 그들이 좋아하는 차를 모두 기억한다. 요즘은 젊은 개발자들도 "
    "노트북을 들고 찾아와 검색 증강 생성(RAG) 파이프라인이나 임베딩 모델의 최대 길이에 대해 이야기한다."
)
ENGLISH_PARAGRAPH = (
    "The old harbour town wakes before dawn, when the fishing boats slip out past the lighthouse and the "
    "bakery on the corner starts its first batch of rye bread. By seven o'clock the market square is full: "
    "farmers unload crates of apples and cabbages, a retired teacher sells second-hand paperbacks from a "
    "folding table, and children on their way to school stop to watch the gulls fight over scraps. "
    "Visitors who arrive by the morning train often ask why the clock on the town hall runs eleven minutes "
    "slow; the locals shrug and say it has always done so, and that nobody has ever missed a ferry because "
    "of it. In the afternoon the wind turns, the tide comes in over the mud flats, and the cafés fill with "
    "people reading newspapers, arguing about football, or simply watching the light change on the water. "
    "When the boats return at dusk, the whole town seems to gather on the quay to see what the sea has "
    "given that day, and to tell the same stories again, a little longer each time they are told. "
    "Nobody writes the stories down; they live in the telling, and every child learns them by heart. "
    "In winter the storms close the harbour for days at a time, the ferry stays tied up at the pier, and the "
    "town turns inward: the library stays open late, the choir rehearses in the drafty church, and the old "
    "men at the harbour bar repair nets by lamplight while the radio reports the height of the waves."
)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def st_modules():
    """sentence-transformers' module classes (6.x: sentence_transformer.modules; 3.x-5.x: models)."""
    st = require_module("sentence_transformers")
    try:
        return require_module("sentence_transformers.sentence_transformer.modules")
    except Exception:
        return st.models


# -- all-MiniLM-L6-v2: inputs longer than max_seq_length ---------------------------------------

@pytest.fixture(scope="module")
def minilm_reference(minilm_dir):
    st = require_module("sentence_transformers")
    require_module("torch").set_num_threads(2)
    model = st.SentenceTransformer(str(minilm_dir), device="cpu")
    texts = [KOREAN_PARAGRAPH, ENGLISH_PARAGRAPH, "A short sentence.", "짧은 문장."]
    full = [len(model.tokenizer(t)["input_ids"]) for t in texts]
    cut = [model.tokenizer(t, truncation=True, max_length=model.max_seq_length)["input_ids"] for t in texts]
    return texts, model.encode(texts, convert_to_numpy=True), full, cut, model.max_seq_length


def test_minilm_long_inputs_match_sentence_transformers(minilm_dir, minilm_reference):
    texts, ref, full, cut, max_len = minilm_reference
    assert max_len == 256 and full[0] == 336 and 256 < full[1] <= 512, "inputs longer than max_seq_length"
    with wrenlm.Model(minilm_dir, n_threads=2) as m:
        assert m.max_seq_length == 256 and m.n_ctx == 512  # the position table holds more than the folder uses
        assert [m._embed_ids(t, k, None) for k, t in enumerate(texts)] == cut  # CLS, first 254 pieces, SEP
        ours = m.embed(texts)
        cos = (unit(ours) * unit(ref)).sum(-1)
        assert cos.min() >= MIN_COSINE, cos
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)  # the folder's Normalize
        np.testing.assert_array_equal(m.embed(texts, truncate=True), ours)  # True: the same cut
        # All 336 tokens (what embed did before it read max_seq_length) is far from the reference.
        all_tokens = m.hidden_states(m.tokenize(texts[0]), exact=False).mean(0)
        assert float(unit(all_tokens) @ unit(ref[0])) < 0.99


def test_minilm_truncate_false_raises(minilm_dir, minilm_reference):
    texts, *_ = minilm_reference
    with wrenlm.Model(minilm_dir, n_threads=2) as m:
        with pytest.raises(wrenlm.ContextOverflowError, match="max_seq_length=256"):
            m.embed([texts[0]], truncate=False)
        with pytest.raises(wrenlm.ContextOverflowError, match="max_seq_length=256"):
            m.embed([m.tokenize(texts[1])], truncate=False)
        assert m.embed(texts[2:], truncate=False).shape == (2, 384)  # short inputs need no cut
        with pytest.raises(ValueError, match="truncate"):
            m.embed(texts[2:], truncate="yes")
        with pytest.raises(ValueError, match="normalize"):
            m.embed(texts[2:], normalize=1)


def test_minilm_normalize_false_leaves_the_final_normalize_out(minilm_dir, minilm_reference):
    texts, ref, *_ = minilm_reference
    with wrenlm.Model(minilm_dir, n_threads=2) as m:
        raw = m.embed(texts, normalize=False)
        states = m.hidden_states(m._embed_ids(texts[2], 2, None), exact=False)
    np.testing.assert_allclose(raw[2], states.mean(0), rtol=1e-5, atol=1e-6)
    assert abs(float(np.linalg.norm(raw[0])) - 1) > 0.01
    assert ((unit(raw) * ref).sum(-1) >= MIN_COSINE).all()


# -- tiny random folders made by sentence-transformers ---------------------------------------------

@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory, minilm_dir):
    transformers = require_module("transformers")
    torch = require_module("torch")
    tok = transformers.AutoTokenizer.from_pretrained(minilm_dir)
    cfg = transformers.BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                                  type_vocab_size=2, hidden_act="gelu")
    torch.manual_seed(0)
    model = transformers.BertModel(cfg).eval()
    with torch.no_grad():  # larger than the default init, so that the token vectors differ clearly
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2)
    d = tmp_path_factory.mktemp("tiny_bert_st") / "bert"
    model.save_pretrained(d, safe_serialization=True)
    tok.save_pretrained(d)
    return d


def make_pooling(mods, dim: int, modes: tuple[str, ...]):
    try:
        return mods.Pooling(dim, pooling_mode=modes[0] if len(modes) == 1 else modes)
    except TypeError:  # sentence-transformers < 6: one mode by name, several by flags
        flags = {"cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens", "mean": "pooling_mode_mean_tokens",
                 "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
                 "weightedmean": "pooling_mode_weightedmean_tokens", "lasttoken": "pooling_mode_lasttoken"}
        return mods.Pooling(dim, pooling_mode=None, **{flags[m]: True for m in modes})


def save_st_folder(bert_dir: Path, out: Path, *, modes: tuple[str, ...], dense: list[dict], normalize: bool,
                   max_seq_length: int = 16, do_lower_case: bool = False) -> Path:
    """A folder written by SentenceTransformer.save: Transformer, Pooling, Dense modules, Normalize.
    (sentence-transformers 6 records max_seq_length as the saved tokenizer's model_max_length.)"""
    st = require_module("sentence_transformers")
    torch = require_module("torch")
    mods = st_modules()
    transformer = mods.Transformer(str(bert_dir), max_seq_length=max_seq_length)
    modules = [transformer, make_pooling(mods, 32, modes)]
    width = 32 * len(modes)
    torch.manual_seed(1)
    for spec in dense:
        layer = mods.Dense(width, spec["out"], bias=spec.get("bias", True),
                           activation_function=spec.get("activation", torch.nn.Tanh()),
                           **({"use_residual": True} if spec.get("residual") else {}))
        with torch.no_grad():
            for p in layer.parameters():
                p.normal_(0.0, 0.3)
        modules.append(layer)
        width = spec["out"]
    if normalize:
        modules.append(mods.Normalize())
    st.SentenceTransformer(modules=modules, device="cpu").save(str(out))
    if do_lower_case:
        # As sentence-transformers < 6 wrote it (6.x folds the lower-casing into the saved tokenizer
        # instead, and still honours these keys when it loads a folder).
        edit_json(out / "sentence_bert_config.json", max_seq_length=max_seq_length, do_lower_case=True)
    return out


def cased_copy(bert_dir: Path, out: Path) -> Path:
    """The tiny BERT with a tokenizer that keeps case (its normalizer no longer lower-cases), so that
    only sentence-transformers' do_lower_case makes "Quick" and "quick" the same token."""
    shutil.copytree(bert_dir, out)
    tok = json.loads((out / "tokenizer.json").read_text())
    tok["normalizer"]["lowercase"] = False
    (out / "tokenizer.json").write_text(json.dumps(tok))
    edit_json(out / "tokenizer_config.json", do_lower_case=False)
    return out


TEXTS = ["Hello world!", "The Quick Brown Fox jumps over the LAZY dog, again and again and again.",
         "검색 증강 생성은 어떻게 작동하나요?", "x",
         "A long input that is cut: " + " ".join(f"word{i}" for i in range(40))]

CASES = {  # name: (pooling modes, Dense modules, Normalize, do_lower_case)
    "max-tanh-normalize": (("max",), [{"out": 24}], True, False),
    "cls+mean-gelu-raw": (("cls", "mean"), [{"out": 24, "activation": "GELU"}], False, False),
    "weightedmean-two-dense": (("weightedmean",), [{"out": 48, "activation": "ReLU"},
                                                   {"out": 16, "bias": False, "activation": "Identity"}], True, False),
    "mean_sqrt_len-lowercase": (("mean_sqrt_len_tokens",), [], False, True),
    "lasttoken-residual": (("lasttoken",), [{"out": 32, "activation": "SiLU", "residual": True}], True, False),
    "mean-no-dense": (("mean",), [], False, False),
    "cls-max-mean-sigmoid": (("cls", "max", "mean"), [{"out": 8, "activation": "Sigmoid"}], True, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tiny_folders_match_sentence_transformers(case, tiny_bert_dir, tmp_path):
    st = require_module("sentence_transformers")
    torch = require_module("torch")
    modes, dense, normalize, lower = CASES[case]
    dense = [dict(d, activation=getattr(torch.nn, d.get("activation", "Tanh"))()) for d in dense]
    if any(d.get("residual") for d in dense) and "use_residual" not in inspect.signature(st_modules().Dense).parameters:
        pytest.skip("this sentence-transformers has no Dense(use_residual=...)")
    bert = cased_copy(tiny_bert_dir, tmp_path / "cased") if lower else tiny_bert_dir
    folder = save_st_folder(bert, tmp_path / case, modes=modes, dense=dense, normalize=normalize,
                            do_lower_case=lower)
    ref = st.SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_numpy=True)
    with wrenlm.Model(folder, n_threads=2, kv_cache="f32") as m:
        assert m.max_seq_length == 16
        ours = m.embed(TEXTS)
        assert m.pooling == "+".join({"lasttoken": "last", "mean_sqrt_len_tokens": "mean_sqrt_len"}.get(x, x)
                                     for x in modes)
    if lower:  # the cased tokenizer alone gives other ids: lower-casing is what makes them agree
        with wrenlm.Model(folder, n_threads=2) as m:
            assert m.tokenize(TEXTS[1]) != m.tokenize(TEXTS[1].lower())
    assert ours.shape == ref.shape and ours.dtype == np.float32
    scale = np.abs(ref).max()
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4 * scale + 1e-6)
    norms = np.linalg.norm(ours, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5) == normalize


@pytest.mark.parametrize("modes, include_prompt", [(("mean",), False), (("cls",), False), (("weightedmean",), False),
                                                    (("mean",), True)])
def test_default_prompt(tiny_bert_dir, tmp_path, modes, include_prompt):
    """config_sentence_transformers.json's default prompt is put before every text, and a Pooling module
    with include_prompt false leaves its tokens out (the prompt's length less its final [SEP])."""
    st = require_module("sentence_transformers")
    folder = save_st_folder(tiny_bert_dir, tmp_path / "prompt", modes=modes, dense=[], normalize=False)
    edit_json(folder / "config_sentence_transformers.json", prompts={"query": "query: ", "document": ""},
              default_prompt_name="query")
    edit_json(folder / "1_Pooling" / "config.json", include_prompt=include_prompt)
    ref = st.SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_numpy=True)
    with wrenlm.Model(folder, n_threads=2, kv_cache="f32") as m:
        ours = m.embed(TEXTS)
        plain = m.embed([m.tokenize(TEXTS[0])])  # token ids get no prompt
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4 * np.abs(ref).max() + 1e-6)
    assert np.abs(plain[0] - ours[0]).max() > 1e-3


def test_legacy_pooling_flags(tiny_bert_dir, tmp_path):
    """Folders saved by older sentence-transformers: pooling_mode_* flags (here CLS and max together)."""
    st = require_module("sentence_transformers")
    folder = save_st_folder(tiny_bert_dir, tmp_path / "legacy", modes=("cls",), dense=[], normalize=False)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_max_tokens": True,
         "pooling_mode_mean_tokens": False}))
    ref = st.SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_numpy=True)
    assert ref.shape == (len(TEXTS), 64)
    with wrenlm.Model(folder, n_threads=2, kv_cache="f32") as m:
        assert m.pooling == "cls+max"
        np.testing.assert_allclose(m.embed(TEXTS), ref, rtol=0, atol=1e-4 * np.abs(ref).max() + 1e-6)


def test_given_pooling_replaces_the_folders(tiny_bert_dir, tmp_path):
    folder = save_st_folder(tiny_bert_dir, tmp_path / "p", modes=("mean",), dense=[], normalize=True)
    with wrenlm.Model(folder, n_threads=2, kv_cache="f32") as m:
        ids = m._embed_ids(TEXTS[1], 0, None)
        states = m.hidden_states(ids, exact=False)
        got = m.embed([TEXTS[1]], pooling="max", normalize=False)[0]
        np.testing.assert_allclose(got, states.max(0), rtol=1e-6)
        w = np.arange(1, len(ids) + 1)[:, None]
        got = m.embed([TEXTS[1]], pooling="weightedmean")[0]
        np.testing.assert_allclose(got, unit((states * w).sum(0) / w.sum()), rtol=1e-5, atol=1e-6)
    dense = save_st_folder(tiny_bert_dir, tmp_path / "d", modes=("cls", "mean"), dense=[{"out": 8}], normalize=False)
    with wrenlm.Model(dense, n_threads=2, kv_cache="f32") as m:
        with pytest.raises(ValueError, match="takes 64 features"):
            m.embed(TEXTS, pooling="mean")


def test_truncate_choices(tiny_bert_dir, tmp_path):
    folder = save_st_folder(tiny_bert_dir, tmp_path / "t", modes=("mean",), dense=[], normalize=True)
    long = TEXTS[-1]
    with wrenlm.Model(folder, n_threads=2, kv_cache="f32") as m:
        assert len(m.tokenize(long)) > 16
        cut = m._embed_ids(long, 0, None)
        assert len(cut) == 16 and cut[0] == m.tokenize(long)[0] and cut[-1] == m.tokenize(long)[-1]
        np.testing.assert_array_equal(m.embed([long]), m.embed([cut]))
        with pytest.raises(wrenlm.ContextOverflowError, match="max_seq_length=16"):
            m.embed([long], truncate=False)
    # A context window smaller than max_seq_length: past n_ctx is an error unless truncate=True.
    with wrenlm.Model(folder, n_threads=2, n_ctx=8, kv_cache="f32") as m:
        assert m.embed(["hi"]).shape == (1, 32)
        with pytest.raises(wrenlm.ContextOverflowError, match="n_ctx=8"):
            m.embed([long])
        assert len(m._embed_ids(long, 0, True)) == 8


# -- malformed and unsupported folders -------------------------------------------------------------

@pytest.fixture()
def plain_folder(tiny_bert_dir, tmp_path):
    return save_st_folder(tiny_bert_dir, tmp_path / "f", modes=("mean",), dense=[{"out": 8}], normalize=True)


def edit_json(path: Path, **changes) -> None:
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def test_unsupported_module_is_named(plain_folder):
    modules = json.loads((plain_folder / "modules.json").read_text())
    modules.insert(2, {"idx": 9, "name": "9", "path": "9_LayerNorm", "type": "sentence_transformers.models.LayerNorm"})
    (plain_folder / "modules.json").write_text(json.dumps(modules))
    with wrenlm.Model(plain_folder, n_threads=2, kv_cache="f32") as m:  # loads: hidden states and the like still work
        assert m.hidden_states(m.tokenize("hi")).shape[1] == 32
        with pytest.raises(wrenlm.UnsupportedError, match="9_LayerNorm: sentence_transformers.models.LayerNorm"):
            m.embed(["hi"])


def test_no_pooling_module(plain_folder):
    (plain_folder / "modules.json").write_text(json.dumps(
        [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]))
    with wrenlm.Model(plain_folder, n_threads=2, kv_cache="f32") as m:
        with pytest.raises(wrenlm.UnsupportedError, match="no Pooling module"):
            m.embed(["hi"])


@pytest.mark.parametrize("damage, error, match", [
    ("pooling_mode", wrenlm.FormatError, "unknown pooling mode"),
    ("activation", wrenlm.UnsupportedError, "activation function 'torch.nn.modules.activation.Softsign'"),
    ("pickle", wrenlm.UnsupportedError, "pickle weights are refused"),
    ("shape", wrenlm.FormatError, "has shape"),
    ("max_seq_length", wrenlm.FormatError, "'max_seq_length' must be int"),
    ("modules", wrenlm.FormatError, "not valid JSON"),
    ("escape", wrenlm.FormatError, "inside the model folder"),
])
def test_malformed_configs(plain_folder, damage, error, match):
    dense = next(p for p in plain_folder.iterdir() if p.name.endswith("_Dense"))
    if damage == "pooling_mode":
        edit_json(plain_folder / "1_Pooling" / "config.json", pooling_mode="median")
    elif damage == "activation":
        edit_json(dense / "config.json", activation_function="torch.nn.modules.activation.Softsign")
    elif damage == "pickle":
        (dense / "model.safetensors").rename(dense / "pytorch_model.bin")
    elif damage == "shape":
        edit_json(dense / "config.json", out_features=9)
    elif damage == "max_seq_length":
        edit_json(plain_folder / "sentence_bert_config.json", max_seq_length="256")
    elif damage == "modules":
        (plain_folder / "modules.json").write_text("[{")
    elif damage == "escape":
        modules = json.loads((plain_folder / "modules.json").read_text())
        modules[-1]["path"] = "../elsewhere"
        (plain_folder / "modules.json").write_text(json.dumps(modules))
    if damage == "modules":  # the engine reads modules.json too, when it loads the folder
        with pytest.raises(wrenlm.FormatError):
            wrenlm.Model(plain_folder, n_threads=2, kv_cache="f32")
        return
    with wrenlm.Model(plain_folder, n_threads=2, kv_cache="f32") as m:
        with pytest.raises(error, match=match):
            m.embed(["hi"])


def test_gguf_and_plain_folders_unchanged(tiny_bert_dir, tmp_path):
    """No modules.json: the engine's pooling and unit vectors, no cut but the context window."""
    plain = tmp_path / "plain"
    shutil.copytree(tiny_bert_dir, plain)
    with wrenlm.Model(plain, n_threads=2, kv_cache="f32") as m:
        assert m.max_seq_length is None and m.pooling == "mean"
        ids = m.tokenize(TEXTS[1])
        v = m.embed([TEXTS[1]])[0]
        np.testing.assert_allclose(v, unit(m.hidden_states(ids, exact=False).mean(0)), rtol=1e-5, atol=1e-6)
        with pytest.raises(wrenlm.ContextOverflowError, match="n_ctx=64"):
            m.embed([" ".join(["word"] * 100)])
