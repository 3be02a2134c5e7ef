"""atheris target: wrenlm's sandboxed chat-template renderer (wrenlm.chat.render).

Each input builds a Jinja template -- from fragments of real chat templates, sandbox-escape attempts
(dunder attributes, globals of helpers, format-string tricks, imports), budget attacks (huge repeats,
powers, widths, deep recursion, long loops) and free text -- plus a message list, and renders it.

Expected outcomes: a str, ChatTemplateError (the template's fault, however it fails) or ValueError
(malformed messages). Findings: any other exception; an escape from the sandbox, detected by
  - an audit hook that flags file opens, process / socket / import-system calls made while rendering,
  - canary values that only an escape can reach (this module's globals, a file on disk) appearing
    in the output;
and a render that runs past -timeout (the renderer's own budget is TIME_BUDGET_S).

Coverage: atheris instruments this script, wrenlm.chat and jinja2 (their Python branches); the
native extension is not involved here.

Run through tools/fuzz.sh (smoke / run / repro), or directly: python fuzz/python/fuzz_chat_template.py CORPUS_DIR
"""

from __future__ import annotations

import os
import sys

import atheris

with atheris.instrument_imports():
    import jinja2  # noqa: F401  (instrumented for coverage)
    from wrenlm import chat

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scratch import scratch_dir  # noqa: E402

SECRET = "wrenlm-fuzz-canary-7f3a9c"  # reachable only through this module's globals
CANARY_FILE = os.path.join(scratch_dir("wrenlm-fuzz-chat-"), "canary.txt")
FILE_SECRET = "wrenlm-file-canary-41be02"
with open(CANARY_FILE, "w") as f:
    f.write(FILE_SECRET)

# Events a template must never cause. "open" is allowed only for Python's own module files
# (a lazy import inside jinja2 while rendering is not the template's doing).
FORBIDDEN_EVENTS = {"os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "subprocess.Popen",
                    "socket.connect", "socket.bind", "os.remove", "os.rename", "os.mkdir", "os.chmod",
                    "shutil.rmtree", "ctypes.dlopen", "os.listdir", "os.scandir", "builtins.input"}
_rendering = False
_violations: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if not _rendering:
        return
    if event in FORBIDDEN_EVENTS:
        _violations.append(f"{event}{args!r}")
    elif event == "open":
        path = str(args[0]) if args else ""
        # "<template>": when the Python Jinja generates from a template does not compile, CPython
        # looks for the failing line in a file of the code's name (SyntaxError.text); wrenlm never
        # shows it (test_fuzz_regressions.py::test_template_compiling_to_bad_python_leaks_no_file).
        if not path.endswith((".py", ".pyc", ".so")) and "__pycache__" not in path and path != "<template>":
            _violations.append(f"open{args!r}")


sys.addaudithook(_audit)

FRAGMENTS = [
    "{% for m in messages %}", "{% endfor %}", "{% if add_generation_prompt %}", "{% endif %}", "{% else %}",
    "{{ m['role'] }}", "{{ m.content }}", "{{ m['content'] | trim }}", "{{ bos_token }}", "{{ eos_token }}",
    "<|im_start|>", "<|im_end|>\n", "{% if m['role'] == 'system' %}", "{{ raise_exception('bad role') }}",
    "{% set ns = namespace(n=0) %}", "{% set ns.n = ns.n + 1 %}", "{{ ns.n }}", "{{ loop.index }}",
    "{{ messages | length }}", "{{ messages | tojson }}", "{{ m | tojson(indent=2) }}", "{{ strftime_now('%Y') }}",
    "{% macro f(x) %}{{ x }}{{ f(x) }}{% endmacro %}{{ f(1) }}", "{{ 'x' * 1000000000 }}", "{{ 9 ** 9 ** 9 }}",
    "{{ '%9999999999s' % 'a' }}", "{{ '%*s' % (1000000000, 'a') }}", "{{ 'a'.ljust(10**10) }}",
    "{{ 'a' | center(10**10) }}", "{{ range(10**9) | list | length }}", "{% for i in range(10**8) %}{% endfor %}",
    "{{ ''.__class__ }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "{{ messages.__class__.__init__ }}",
    "{{ raise_exception.__globals__ }}", "{{ strftime_now.__globals__['os'] }}", "{{ cycler.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}", "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}", "{{ self._TemplateReference__context }}", "{{ self.__dict__ }}",
    "{{ ''.format.__self__ }}", "{{ '{0.__class__}'.format(1) }}", "{{ '{0.__globals__}'.format(raise_exception) }}",
    "{% import 'os' as os %}", "{% include '/etc/passwd' %}", "{% extends CANARY %}", "{{ config }}",
    "{{ request }}", "{{ m.items() | list }}", "{{ m.update({'a': 1}) }}", "{{ messages.append(1) }}",
    "{{ messages.pop() }}", "{{ (messages[0] | attr('__class__')) }}", "{{ m | attr('__init__') }}",
    "{{ x.y.z }}", "{{ undefined_thing() }}", "{{ 1 / 0 }}", "{{ [1] + 'a' }}", "{{ messages[99] }}",
    "{% for x in 'abc' %}{{ x }}{% endfor %}", "{{ m['content'].split() | join(', ') }}", "{% raw %}{{{% endraw %}",
    "{# comment #}", "{%- if true -%}", "{%- endif -%}", "{{ 10**100000 }}", "{{ 'a' * -1 }}", "{{ '%s' % m }}",
    "{{ m['content'] | replace('a', 'aaaaaaaaaa') | replace('a', 'aaaaaaaaaa') | replace('a', 'aaaaaaaaaa') }}",
    "{{ range(1, 10, 0) | list }}", "{{ '' | wordwrap(10**9) }}", "{{ m['content'] | indent(10**9) }}",
    "{{ m['content'] | truncate(-5) }}", "{{ m['content'] | format(1, 2) }}", "{{ 0.1 | round(10**9) }}",
    "{{ 'x' | batch(0) | list }}", "{{ messages | map(attribute='__class__') | list }}",
    "{{ messages | selectattr('role', 'equalto', 'user') | list }}", "{{ tools }}", "{{ tools | tojson }}",
]


def template(fdp: atheris.FuzzedDataProvider) -> str:
    parts = []
    for _ in range(fdp.ConsumeIntInRange(0, 12)):
        k = fdp.ConsumeIntInRange(0, 5)
        if k <= 3:
            parts.append(fdp.PickValueInList(FRAGMENTS))
        elif k == 4:
            parts.append(fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 16)))
        else:
            parts.append("{{ " + fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 24)) + " }}")
    return "".join(parts)


def messages(fdp: atheris.FuzzedDataProvider) -> object:
    if fdp.ConsumeIntInRange(0, 15) == 0:
        return fdp.PickValueInList([[], "hi", None, [{"role": "user"}], [{"role": "", "content": "x"}],
                                    [{"role": "user", "content": 3}], [1], [{"role": "user", "content": "\ud800"}]])
    out = []
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        out.append({"role": fdp.PickValueInList(["system", "user", "assistant", "tool"]),
                    "content": fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 40))})
    return out


def TestOneInput(data: bytes) -> None:
    global _rendering
    fdp = atheris.FuzzedDataProvider(data)
    tmpl = template(fdp)
    msgs = messages(fdp)
    gen = fdp.ConsumeBool()
    out = None
    _violations.clear()
    _rendering = True
    try:
        out = chat.render(tmpl, msgs, add_generation_prompt=gen, bos_token="<s>", eos_token="</s>",
                          model_path="fuzz.gguf")
    except (chat.ChatTemplateError, ValueError):
        pass
    finally:
        _rendering = False
    if _violations:
        raise RuntimeError(f"sandbox escape: {_violations[:3]} from template {tmpl!r}")
    if out is not None:
        if not isinstance(out, str):
            raise RuntimeError(f"render returned {type(out).__name__}, not str")
        if SECRET in out or FILE_SECRET in out:
            raise RuntimeError(f"sandbox escape: a canary reached the output of template {tmpl!r}")


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
