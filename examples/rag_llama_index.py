"""Retrieval-augmented answers in LlamaIndex, all in this process: 50 documents (English and Korean)
embedded with all-MiniLM-L6-v2 through WrenLMEmbedding into a VectorStoreIndex (its in-memory
SimpleVectorStore), and a streaming query engine answering with WrenLM. Each question gets a
follow-up over the same documents, whose prompt the prefix cache mostly supplies.

    pip install "wrenlm[llama-index]"
    python examples/rag_llama_index.py --embedding-model all-MiniLM-L6-v2/ [--model model.gguf]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Optional

from llama_index.core import VectorStoreIndex, get_response_synthesizer
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.response.schema import StreamingResponse
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.indices.prompt_helper import PromptHelper
from llama_index.core.llms import LLM, ChatMessage, MessageRole
from llama_index.core.prompts import ChatPromptTemplate
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from rag_common import (
    TOP_K,
    Answer,
    Doc,
    consume,
    embedding_model_path,
    load_knowledge_base,
    parse_args,
    questions_to_ask,
    run,
    system_message,
)

# The system message holds the instructions and the documents ({context_str}); the question follows.
QA_TEMPLATE = ChatPromptTemplate([ChatMessage(role=MessageRole.SYSTEM, content=system_message("{context_str}")),
                                  ChatMessage(role=MessageRole.USER, content="{query_str}")])


def document_node(doc: Doc) -> TextNode:
    """A document as one node: node id = document id, embedded as its bare text, shown to the LLM as
    ``[id] text`` (rag_common.format_document's form)."""
    return TextNode(id_=doc.id, text=doc.text, metadata={"id": doc.id, "lang": doc.lang},
                    excluded_embed_metadata_keys=["id", "lang"], excluded_llm_metadata_keys=["lang"],
                    metadata_template="{value}", text_template="[{metadata_str}] {content}")


class LastUsage(BaseCallbackHandler):
    """Keeps the token counts of the LLM's last finished call (WrenLM puts them in each response's
    ``additional_kwargs``; a streamed call ends when its stream is read to the end)."""

    def __init__(self) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
        self.usage: dict[str, Any] = {}

    def on_event_start(self, event_type: CBEventType, payload: Optional[dict[str, Any]] = None, event_id: str = "",
                       parent_id: str = "", **kwargs: Any) -> str:
        if event_type == CBEventType.LLM:
            self.usage = {}
        return event_id

    def on_event_end(self, event_type: CBEventType, payload: Optional[dict[str, Any]] = None, event_id: str = "",
                     **kwargs: Any) -> None:
        response = (payload or {}).get(EventPayload.RESPONSE)
        if event_type == CBEventType.LLM and response is not None:
            self.usage = dict(response.additional_kwargs)

    def start_trace(self, trace_id: Optional[str] = None) -> None:
        pass

    def end_trace(self, trace_id: Optional[str] = None, trace_map: Optional[dict[str, list[str]]] = None) -> None:
        pass


class LlamaIndexRag:
    """A vector index of docs and a streaming query engine over it.

    Args:
        llm: the LLM (WrenLM). Its callback manager becomes the query engine's: its handlers and a
            :class:`LastUsage`.
        embed_model: the embedding model (WrenLMEmbedding).
        docs: the knowledge base; each document is one node whose id is the document's id.
        k: documents retrieved per question.
    """

    def __init__(self, llm: LLM, embed_model: BaseEmbedding, docs: Sequence[Doc], *, k: int = TOP_K) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.index = VectorStoreIndex([document_node(d) for d in docs], embed_model=embed_model)
        self.retriever = self.index.as_retriever(similarity_top_k=k)
        # The synthesizer gives the LLM its own callback manager: this one keeps the LLM's handlers.
        self.last_usage = LastUsage()
        callbacks = CallbackManager([*llm.callback_manager.handlers, self.last_usage])
        tokenizer = getattr(getattr(llm, "model", None), "tokenize", None)  # WrenLM: count the model's own tokens
        prompt_helper = PromptHelper.from_llm_metadata(llm.metadata, tokenizer=tokenizer)
        synthesizer = get_response_synthesizer(llm=llm, prompt_helper=prompt_helper, text_qa_template=QA_TEMPLATE,
                                               streaming=True, callback_manager=callbacks)
        self.query_engine = RetrieverQueryEngine(self.retriever, synthesizer)

    def retrieve(self, question: str) -> list[NodeWithScore]:
        """The k nodes the retriever finds for question, best first."""
        return self.retriever.retrieve(question)

    def ask(self, question: str, *, echo: bool = False) -> Answer:
        """Retrieves documents for question and streams the answer (printed as it comes when echo)."""
        response = self.query_engine.query(question)
        return self._answer(question, response, time.perf_counter(), echo)

    def follow_up(self, previous: Answer, question: str, *, echo: bool = False) -> Answer:
        """Answers question from the nodes retrieved for previous (no new retrieval)."""
        started = time.perf_counter()
        response = self.query_engine.synthesize(QueryBundle(question), previous.context)
        return self._answer(question, response, started, echo)

    def _answer(self, question: str, response: Any, ready: float, echo: bool) -> Answer:
        if not isinstance(response, StreamingResponse):
            raise TypeError(f"expected a StreamingResponse from the query engine, got {type(response).__name__}")
        streamed = consume(response.response_gen, echo)
        nodes = list(response.source_nodes)
        usage = self.last_usage.usage
        return Answer(question=question, doc_ids=[n.node.node_id for n in nodes],
                      doc_texts=[n.node.get_content() for n in nodes], text=streamed.text, chunks=streamed.chunks,
                      ttft_s=streamed.first_at - ready, prompt_tokens=usage.get("prompt_tokens", 0),
                      cached_tokens=usage.get("cached_tokens", 0), context=nodes)


def main(argv: Optional[Sequence[str]] = None) -> list[Answer]:
    from wrenlm.integrations.llama_index import WrenLM, WrenLMEmbedding

    args = parse_args(__doc__.splitlines()[0], argv)
    docs, questions = load_knowledge_base()
    threads = {"n_threads": args.threads} if args.threads else {}
    embed_model = WrenLMEmbedding(str(embedding_model_path(args.embedding_model)), model_kwargs=threads)
    llm = WrenLM(args.model, max_tokens=args.max_tokens, model_kwargs=threads)
    rag = LlamaIndexRag(llm, embed_model, docs, k=args.top_k)
    return run(lambda q: rag.ask(q, echo=True), lambda a, q: rag.follow_up(a, q, echo=True),
               questions_to_ask(args, questions))


if __name__ == "__main__":
    main()
