"""LangChain's own conformance suites (``langchain-tests``, pinned in the ``test`` extra) on
ChatWrenLM and WrenLMEmbeddings.

Unit suites: a tiny random Llama folder (wrenlm.testing) loaded from its path. Integration suites:
the real SmolLM2-135M-Instruct (shared session Model, short replies) and all-MiniLM-L6-v2. Feature
flags are set to what wrenlm does: no tool calling, structured output, JSON mode or image/audio/PDF
input; usage metadata with ``cache_read`` (the prefix cache), both on invoke and stream. The suites'
async tests run under pytest-asyncio (installed with langchain-tests), marked here per class.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from typing import Any

import pytest
from conftest import REQUIRE_REFERENCE

try:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from langchain_tests.integration_tests import ChatModelIntegrationTests, EmbeddingsIntegrationTests
    from langchain_tests.unit_tests import ChatModelUnitTests, EmbeddingsUnitTests
except ImportError as e:  # the reference suites are missing
    if REQUIRE_REFERENCE:
        raise
    pytest.skip(f"reference unavailable: langchain-tests: {e!r}", allow_module_level=True)

from wrenlm.integrations.langchain import ChatWrenLM, WrenLMEmbeddings
from wrenlm.testing import write_tiny_llama

# The suites' async tests are plain ``async def`` methods; sync ones stay sync (the mark is ignored there).
ASYNC = [pytest.mark.asyncio,
         pytest.mark.filterwarnings("ignore:The test <Function .*> is marked with '@pytest.mark.asyncio'")]


@functools.lru_cache(maxsize=1)
def tiny_folder() -> str:
    """A tiny random Llama (ChatML template, real BPE tokenizer) written once per test session."""
    tmp = tempfile.mkdtemp(prefix="wrenlm-lc-")
    atexit.register(shutil.rmtree, tmp, True)
    return str(write_tiny_llama(tmp, seed=11))


class TestChatWrenLMUnit(ChatModelUnitTests):
    pytestmark = ASYNC

    @property
    def chat_model_class(self) -> type[ChatWrenLM]:
        return ChatWrenLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": tiny_folder(), "model_kwargs": {"n_ctx": 256, "n_threads": 1}}

    @property
    def supports_model_override(self) -> bool:
        return False  # one process, one loaded model: a call cannot switch to another file

    @property
    def returns_usage_metadata(self) -> bool:
        return True


class TestChatWrenLMIntegration(ChatModelIntegrationTests):
    pytestmark = ASYNC

    @pytest.fixture(autouse=True)
    def _real_model(self, smollm2: Any) -> None:
        self.lm = smollm2  # one loaded SmolLM2 for every test (the engine batches concurrent calls)

    @property
    def chat_model_class(self) -> type[ChatWrenLM]:
        return ChatWrenLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": self.lm, "max_tokens": 24, "temperature": 0}

    @property
    def supports_model_override(self) -> bool:
        return False

    @property
    def supported_usage_metadata_details(self) -> dict[str, list[str]]:
        return {"invoke": ["cache_read_input"], "stream": ["cache_read_input"]}

    def invoke_with_cache_read_input(self, *, stream: bool = False) -> AIMessage:
        """A conversation sent twice: the second call reads its prompt's keys and values from the
        prefix cache (the suite checks the count is an int, at most input_tokens; we also check > 0)."""
        chat = ChatWrenLM(model=self.lm, max_tokens=4)
        messages = [SystemMessage("You are a careful assistant. " * 8), HumanMessage("Name a colour.")]
        chat.invoke(messages)
        if stream:
            full = None
            for chunk in chat.stream(messages):
                full = chunk if full is None else full + chunk
            message: AIMessage = full  # type: ignore[assignment]
        else:
            message = chat.invoke(messages)
        assert message.usage_metadata is not None
        assert message.usage_metadata["input_token_details"]["cache_read"] > 0
        return message


class TestWrenLMEmbeddingsUnit(EmbeddingsUnitTests):
    pytestmark = ASYNC

    @property
    def embeddings_class(self) -> type[WrenLMEmbeddings]:
        return WrenLMEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": tiny_folder(), "model_kwargs": {"n_ctx": 256, "n_threads": 1}}


class TestWrenLMEmbeddingsIntegration(EmbeddingsIntegrationTests):
    pytestmark = ASYNC

    @pytest.fixture(autouse=True)
    def _real_model(self, minilm_dir: Any) -> None:
        self.folder = str(minilm_dir)

    @property
    def embeddings_class(self) -> type[WrenLMEmbeddings]:
        return WrenLMEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": self.folder, "batch_size": 2}
