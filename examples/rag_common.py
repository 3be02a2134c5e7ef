"""What the two RAG examples (rag_langchain.py, rag_llama_index.py) share: the knowledge base in
rag_docs.json, the instructions the chat model gets, the command line, and the record of one answer
(text, sources, time to first token, prompt tokens the prefix cache supplied).

The knowledge base describes two made-up sister islands, Corran (25 documents in English) and
Hanbyeol (25 in Korean), so an answer that states their facts can only have taken them from the
retrieved documents.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

DOCS_FILE = Path(__file__).with_name("rag_docs.json")
EMBEDDING_ENV = "WRENLM_EMBEDDING_MODEL"
TOP_K = 3
MAX_TOKENS = 64

# The context sits in the system message, before the question: a follow-up question over the same
# documents then shares the whole context as its prompt prefix, and the prefix cache supplies it.
INSTRUCTIONS = ("You answer questions about two islands from the documents below. Each document starts with "
                "its id in square brackets. Answer in one sentence, then write the id of the document that "
                "holds the answer, in square brackets.")


def system_message(context: str) -> str:
    """The system message: the instructions, then the retrieved documents."""
    return f"{INSTRUCTIONS}\n\nDocuments:\n{context}"


def format_document(doc_id: str, text: str) -> str:
    """One retrieved document as the prompt shows it: ``[id] text``."""
    return f"[{doc_id}] {text}"


DOCUMENT_SEPARATOR = "\n\n"  # between documents in the prompt (LlamaIndex joins its chunks so)


@dataclass(frozen=True)
class Doc:
    id: str
    lang: str
    text: str


@dataclass(frozen=True)
class Question:
    question: str
    follow_up: str  # a second question meant to be answered from the first one's documents
    answer_id: str  # the document that holds the answer (for reporting retrieval quality)


def load_knowledge_base(path: str | os.PathLike[str] = DOCS_FILE) -> tuple[list[Doc], list[Question]]:
    """The documents and questions of a knowledge-base file (rag_docs.json's layout).

    Raises:
        ValueError: a document without an id, lang or non-empty text, a repeated id, or a question
            whose answer_id is not a document.
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    docs = []
    for i, d in enumerate(data.get("documents", [])):
        if not all(isinstance(d.get(k), str) and d[k].strip() for k in ("id", "lang", "text")):
            raise ValueError(f"{path}: documents[{i}] needs non-empty string fields id, lang and text, got {d!r}")
        docs.append(Doc(d["id"], d["lang"], d["text"]))
    ids = [d.id for d in docs]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"{path}: repeated document ids {', '.join(repeated)}")
    if not docs:
        raise ValueError(f"{path}: no documents")
    questions = []
    for i, q in enumerate(data.get("questions", [])):
        if q.get("answer_id") not in ids:
            raise ValueError(f"{path}: questions[{i}].answer_id {q.get('answer_id')!r} is not a document id")
        questions.append(Question(q["question"], q["follow_up"], q["answer_id"]))
    return docs, questions


def embedding_model_path(path: Optional[str] = None) -> Path:
    """The embedding model folder: path, else $WRENLM_EMBEDDING_MODEL, else all-MiniLM-L6-v2 in
    wrenlm's cache folder.

    Raises:
        FileNotFoundError: that folder does not exist (the message says how to give one).
    """
    from wrenlm import hub

    chosen = path or os.environ.get(EMBEDDING_ENV) or hub.cache_dir() / "all-MiniLM-L6-v2"
    p = Path(chosen).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"embedding model {p} not found: pass --embedding-model PATH or set {EMBEDDING_ENV} "
                                f"(a sentence-transformers folder such as all-MiniLM-L6-v2, or a GGUF embedding "
                                f"model)")
    return p


@dataclass
class Answer:
    """One answer of a RAG pipeline.

    ttft_s: seconds from the moment the prompt was ready (documents retrieved) to the first piece of
    the answer. prompt_tokens / cached_tokens: the prompt's length and how many of its tokens the
    prefix cache supplied. context: the retrieved documents as the framework holds them, for a
    follow-up question over the same documents.
    """

    question: str
    doc_ids: list[str]
    doc_texts: list[str]
    text: str
    chunks: int
    ttft_s: float
    prompt_tokens: int
    cached_tokens: int
    context: Any = field(default=None, repr=False)


@dataclass
class StreamedText:
    text: str
    chunks: int  # non-empty pieces
    first_at: float  # time.perf_counter() when the first one came (nan: none came)


def consume(pieces: Iterable[str], echo: bool) -> StreamedText:
    """Reads a stream of text pieces, printing each as it comes when echo."""
    parts: list[str] = []
    first = float("nan")
    for piece in pieces:
        if not piece:
            continue
        if not parts:
            first = time.perf_counter()
        parts.append(piece)
        if echo:
            print(piece, end="", flush=True)
    if echo:
        print()
    return StreamedText("".join(parts), len(parts), first)


def print_answer_facts(answer: Answer) -> None:
    """The sources and timing of an answer (its text was printed while it streamed)."""
    print(f"  sources: {', '.join(answer.doc_ids)}")
    print(f"  time to first token {answer.ttft_s * 1000:.0f} ms; prompt {answer.prompt_tokens} tokens, "
          f"{answer.cached_tokens} from the prefix cache; {answer.chunks} streamed pieces")


def parse_args(description: str, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The examples' command line."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", help="chat model (GGUF file or folder); default: $WRENLM_MODEL, else "
                   "wrenlm's default model (SmolLM2-135M-Instruct)")
    p.add_argument("--embedding-model", help=f"embedding model folder; default: ${EMBEDDING_ENV}, else "
                   "all-MiniLM-L6-v2 in wrenlm's cache folder")
    p.add_argument("--threads", type=int, default=None, help="compute threads (default: the physical cores)")
    p.add_argument("--top-k", type=int, default=TOP_K, help=f"documents retrieved per question (default {TOP_K})")
    p.add_argument("--max-tokens", type=int, default=MAX_TOKENS,
                   help=f"new tokens per answer at most (default {MAX_TOKENS})")
    p.add_argument("--question", help="ask this instead of the knowledge base's questions")
    p.add_argument("--follow-up", help="with --question: a second question over the same documents")
    args = p.parse_args(argv)
    if args.top_k < 1:
        p.error(f"--top-k must be >= 1, got {args.top_k}")
    if args.max_tokens < 1:
        p.error(f"--max-tokens must be >= 1, got {args.max_tokens}")
    if args.follow_up and not args.question:
        p.error("--follow-up needs --question")
    return args


def questions_to_ask(args: argparse.Namespace, questions: Sequence[Question]) -> list[tuple[str, Optional[str]]]:
    """(question, follow-up or None) pairs: the command line's, else the knowledge base's."""
    if args.question:
        return [(args.question, args.follow_up)]
    return [(q.question, q.follow_up) for q in questions]


def run(ask: Any, follow_up: Any, pairs: Sequence[tuple[str, Optional[str]]]) -> list[Answer]:
    """Asks each question (ask(question) -> Answer), then its follow-up over the same documents
    (follow_up(answer, question) -> Answer), printing the answers as they stream."""
    answers = []
    for question, second in pairs:
        print(f"\nQ: {question}\nA: ", end="", flush=True)
        first = ask(question)
        print_answer_facts(first)
        answers.append(first)
        if second:
            print(f"Q (same documents): {second}\nA: ", end="", flush=True)
            answers.append(follow_up(first, second))
            print_answer_facts(answers[-1])
    sys.stdout.flush()
    return answers
