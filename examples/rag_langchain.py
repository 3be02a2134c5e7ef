"""Retrieval-augmented answers in LangChain, all in this process: 50 documents (English and Korean)
embedded with all-MiniLM-L6-v2 through WrenLMEmbeddings into LangChain's InMemoryVectorStore, a
retriever, a chat prompt, and ChatWrenLM streaming the answer (one LCEL chain). Each question gets a
follow-up over the same documents, whose prompt the prefix cache mostly supplies.

    pip install "wrenlm[langchain]"
    python examples/rag_langchain.py --embedding-model all-MiniLM-L6-v2/ [--model model.gguf]
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, Optional

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from rag_common import (
    DOCUMENT_SEPARATOR,
    TOP_K,
    Answer,
    Doc,
    consume,
    embedding_model_path,
    format_document,
    load_knowledge_base,
    parse_args,
    questions_to_ask,
    run,
    system_message,
)


def format_context(docs: Sequence[Document]) -> str:
    """The retrieved documents as the system message lists them."""
    return DOCUMENT_SEPARATOR.join(format_document(str(d.id), d.page_content) for d in docs)


def _prompt_inputs(inputs: dict[str, Any]) -> dict[str, str]:
    return {"system": system_message(format_context(inputs["context"])), "question": inputs["question"]}


class LangChainRag:
    """A vector store of docs and the chains that answer from it.

    ``chain`` (question -> {"context": documents, "question", "answer": message}) retrieves and
    answers; ``answer_chain`` ({"context": documents, "question"} -> message) answers from documents
    already retrieved.

    Args:
        chat: the chat model (ChatWrenLM).
        embeddings: the embeddings model (WrenLMEmbeddings).
        docs: the knowledge base; each document's id becomes its vector-store id.
        k: documents retrieved per question.
    """

    def __init__(self, chat: BaseChatModel, embeddings: Embeddings, docs: Sequence[Doc], *, k: int = TOP_K) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.store = InMemoryVectorStore(embeddings)
        self.store.add_documents([Document(id=d.id, page_content=d.text, metadata={"lang": d.lang}) for d in docs])
        self.retriever = self.store.as_retriever(search_kwargs={"k": k})
        prompt = ChatPromptTemplate.from_messages([("system", "{system}"), ("human", "{question}")])
        self.answer_chain: Runnable = RunnableLambda(_prompt_inputs) | prompt | chat
        self.chain: Runnable = RunnableParallel(context=self.retriever,
                                                question=RunnablePassthrough()).assign(answer=self.answer_chain)

    def retrieve(self, question: str) -> list[Document]:
        """The k documents the retriever finds for question, best first."""
        return self.retriever.invoke(question)

    def ask(self, question: str, *, echo: bool = False) -> Answer:
        """Retrieves documents for question and streams the answer (printed as it comes when echo)."""
        got: dict[str, Any] = {}

        def pieces() -> Iterator[str]:
            for part in self.chain.stream(question):
                if "context" in part:
                    got["context"], got["ready"] = part["context"], time.perf_counter()
                if "answer" in part:
                    yield from self._collect(got, part["answer"])

        streamed = consume(pieces(), echo)
        return self._answer(question, got, streamed, got["ready"])

    def follow_up(self, previous: Answer, question: str, *, echo: bool = False) -> Answer:
        """Answers question from the documents retrieved for previous (no new retrieval)."""
        got: dict[str, Any] = {"context": previous.context}
        started = time.perf_counter()

        def pieces() -> Iterator[str]:
            for message in self.answer_chain.stream({"context": previous.context, "question": question}):
                yield from self._collect(got, message)

        return self._answer(question, got, consume(pieces(), echo), started)

    @staticmethod
    def _collect(got: dict[str, Any], chunk: AIMessageChunk) -> Iterator[str]:
        """Adds a streamed message chunk to got["message"]; yields its text."""
        got["message"] = chunk if "message" not in got else got["message"] + chunk
        if isinstance(chunk.content, str):
            yield chunk.content

    @staticmethod
    def _answer(question: str, got: dict[str, Any], streamed: Any, ready: float) -> Answer:
        docs: list[Document] = got["context"]
        usage = got["message"].usage_metadata or {}
        return Answer(question=question, doc_ids=[str(d.id) for d in docs], doc_texts=[d.page_content for d in docs],
                      text=streamed.text, chunks=streamed.chunks, ttft_s=streamed.first_at - ready,
                      prompt_tokens=usage.get("input_tokens", 0),
                      cached_tokens=usage.get("input_token_details", {}).get("cache_read", 0), context=docs)


def main(argv: Optional[Sequence[str]] = None) -> list[Answer]:
    from wrenlm.integrations.langchain import ChatWrenLM, WrenLMEmbeddings

    args = parse_args(__doc__.splitlines()[0], argv)
    docs, questions = load_knowledge_base()
    threads = {"n_threads": args.threads} if args.threads else {}
    embeddings = WrenLMEmbeddings(model=str(embedding_model_path(args.embedding_model)), model_kwargs=threads)
    chat = ChatWrenLM(model=args.model, model_kwargs=threads, max_tokens=args.max_tokens)
    rag = LangChainRag(chat, embeddings, docs, k=args.top_k)
    return run(lambda q: rag.ask(q, echo=True), lambda a, q: rag.follow_up(a, q, echo=True),
               questions_to_ask(args, questions))


if __name__ == "__main__":
    main()
