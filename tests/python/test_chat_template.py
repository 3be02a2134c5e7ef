"""Chat templates run in Jinja's immutable sandbox: checked against plain jinja2 on the real
template, and against sandbox escapes."""

from __future__ import annotations

import jinja2
import pytest
from wrenlm import chat


def test_matches_plain_jinja_on_the_model_template(smollm2):
    tmpl = smollm2.chat_template
    assert tmpl
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "안녕?"}]
    ref = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(tmpl).render(
        messages=msgs, add_generation_prompt=True, bos_token="<|im_start|>", eos_token="<|im_end|>")
    assert chat.render(tmpl, msgs, bos_token="<|im_start|>", eos_token="<|im_end|>") == ref


def test_sandbox_blocks_escapes():
    evil = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(chat.ChatTemplateError):
        chat.render(evil, [{"role": "user", "content": "x"}])
    mutate = "{% set _ = messages.append({'role': 'x', 'content': 'y'}) %}{{ messages|length }}"
    with pytest.raises(chat.ChatTemplateError):
        chat.render(mutate, [{"role": "user", "content": "x"}])


def test_no_template_is_a_clear_error():
    import wrenlm

    with pytest.raises(chat.ChatTemplateError, match="no chat template") as e:
        chat.render(None, [{"role": "user", "content": "x"}], model_path="m.gguf")
    assert isinstance(e.value, wrenlm.WrenError)


def test_raise_exception_in_template():
    t = "{{ raise_exception('only user messages') }}"
    with pytest.raises(chat.ChatTemplateError, match="only user messages"):
        chat.render(t, [{"role": "user", "content": "x"}])
