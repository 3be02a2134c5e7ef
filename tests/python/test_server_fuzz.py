"""Schema-driven fuzzing of a live `wrenlm serve` (schemathesis, from the server's own OpenAPI
description): requests valid and invalid against the schema, on every operation. Oracle:
schemathesis' ``not_a_server_error`` check (no 5xx; a crash or a hang fails the call), and every
4xx answer is OpenAI's error shape. Bounded for CI: a small context and a short per-request timeout
keep each call short, and a fixed number of examples per operation keeps the run short."""

from __future__ import annotations

import pytest
from conftest import REQUIRE_REFERENCE, require_module
from serve_proc import serve

try:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
except Exception as e:  # the test extra is not installed
    if REQUIRE_REFERENCE:
        raise ImportError(f"schemathesis is needed by test_server_fuzz.py (WRENLM_REQUIRE_REFERENCE=1): {e!r}") from e
    pytest.skip(f"reference unavailable: schemathesis: {e!r}", allow_module_level=True)

EXAMPLES = 25  # per operation and generation mode


@pytest.fixture(scope="module")
def live_schema(tmp_path_factory, smollm2_path, minilm_dir):
    require_module("httpx")
    with serve(tmp_path_factory.mktemp("fuzz"), "--model", f"chat={smollm2_path}", "--embedding-model",
               f"mini={minilm_dir}", "--n-ctx", "64", "--timeout", "3", "--parallel", "4", "--queue", "16",
               api_key=None) as s:
        yield schemathesis.openapi.from_url(s.url + "/openapi.json")


def _operations(schema):
    return [result.ok() for result in schema.get_all_operations()]


# schemathesis' pytest decorators (from_fixture) do not run on pytest 9; its strategies are driven
# with hypothesis directly instead, one test per generation mode, every operation in each.
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_server_errors(live_schema, mode):
    ops = _operations(live_schema)
    assert {op.label for op in ops} >= {"POST /v1/completions", "POST /v1/chat/completions", "POST /v1/embeddings",
                                        "POST /tokenize", "POST /detokenize", "GET /v1/models", "GET /health"}
    seen: dict[int, int] = {}
    for op in ops:
        if mode == "negative" and op.method.upper() != "POST":
            continue  # nothing to get wrong: no parameters, no body (GET /v1/models/{id} takes any id)
        @given(case=op.as_strategy(generation_mode=schemathesis.GenerationMode(mode)))
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def call(case):
            response = case.call(timeout=30)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])
            if 400 <= response.status_code < 500:
                error = response.json()["error"]
                assert set(error) == {"message", "type", "param", "code"}, error
                assert isinstance(error["message"], str) and error["message"]

        call()
    print(f"{mode}: status codes {dict(sorted(seen.items()))}")
    assert not any(code >= 500 for code in seen)
