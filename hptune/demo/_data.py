"""A deterministic synthetic financial question-answering data set.

Each example is a question about a small financial computation (profit, margin, return on
investment, simple interest, coupon payments, ratios...) and an answer sentence with the
computed figure. The answers follow fixed phrasings, so a model can learn the format quickly
and the figures slowly: the learning rate decides how far it gets in a short budget.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "DEMO_CHAT_TEMPLATE",
    "QUESTION_KINDS",
    "generate_corpus",
    "generate_examples",
    "write_formats",
    "write_splits",
]

_COMPANIES = [
    "Acme",
    "Borealis",
    "Cobalt",
    "Dunmore",
    "Everly",
    "Fairway",
    "Granite",
    "Harbor",
    "Ironwood",
    "Juniper",
    "Keystone",
    "Lakeside",
    "Meridian",
    "Northgate",
    "Oakridge",
    "Pinecrest",
    "Quarry",
    "Redwood",
    "Summit",
    "Trident",
]


# Each kind of question draws its figures and says them as a statement, with the answer;
# the question is the statement and what QUESTION_KINDS asks about it.


def _profit(rng: random.Random, firm: str) -> tuple[str, str]:
    revenue = rng.randrange(100, 1000, 10)
    cost = rng.randrange(10, revenue, 10)
    return (
        f"{firm} had revenue of {revenue} and costs of {cost}.",
        f"The profit is {revenue - cost}.",
    )


def _margin(rng: random.Random, firm: str) -> tuple[str, str]:
    revenue = rng.choice([100, 200, 400, 500, 800, 1000])
    profit = rng.randrange(10, revenue // 2, 10)
    return (
        f"{firm} earned a profit of {profit} on revenue of {revenue}.",
        f"The profit margin is {round(100 * profit / revenue)} percent.",
    )


def _roi(rng: random.Random, firm: str) -> tuple[str, str]:
    cost = rng.choice([100, 200, 250, 400, 500])
    gain = rng.randrange(10, cost, 10)
    return (
        f"{firm} invested {cost} and gained {gain}.",
        f"The return on investment is {round(100 * gain / cost)} percent.",
    )


def _interest(rng: random.Random, firm: str) -> tuple[str, str]:
    principal = rng.randrange(100, 2000, 100)
    rate = rng.randrange(1, 10)
    years = rng.randrange(1, 6)
    return (
        f"{firm} lends {principal} at {rate} percent simple interest for {years} years.",
        f"The interest earned is {principal * rate * years // 100}.",
    )


def _coupon(rng: random.Random, firm: str) -> tuple[str, str]:
    face, rate = rng.choice([100, 500, 1000]), rng.randrange(1, 9)
    return (
        f"A bond from {firm} has a face value of {face} and a coupon rate of {rate} percent.",
        f"The annual coupon payment is {face * rate // 100}.",
    )


def _current_ratio(rng: random.Random, firm: str) -> tuple[str, str]:
    liabilities, ratio = rng.randrange(10, 200, 10), rng.randrange(1, 5)
    return (
        f"{firm} has current assets of {liabilities * ratio} and current liabilities of "
        f"{liabilities}.",
        f"The current ratio is {ratio}.",
    )


#: Each kind of question: what it asks, and the draw of its statement and answer.
QUESTION_KINDS: dict[str, tuple[str, Callable[[random.Random, str], tuple[str, str]]]] = {
    "profit": ("What is the profit?", _profit),
    "margin": ("What is the profit margin?", _margin),
    "roi": ("What is the return on investment?", _roi),
    "interest": ("How much interest is earned?", _interest),
    "coupon": ("What is the annual coupon payment?", _coupon),
    "current_ratio": ("What is the current ratio?", _current_ratio),
}


def generate_examples(n: int, *, seed: int) -> list[dict[str, str]]:
    """Return ``n`` question/answer records, the same for the same ``seed``."""
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n=}")
    rng = random.Random(seed)
    kinds = list(QUESTION_KINDS)
    records = []
    for _ in range(n):
        kind = rng.choice(kinds)
        ask, draw = QUESTION_KINDS[kind]
        statement, answer = draw(rng, rng.choice(_COMPANIES))
        records.append({"kind": kind, "question": f"{statement} {ask}", "answer": answer})
    return records


def generate_corpus(n_sentences: int, *, seed: int) -> Iterator[str]:
    """Yield generic business sentences for pre-training the demo model.

    The sentences share the vocabulary of the questions but never their question/answer
    format, so fine-tuning still has something to teach.
    """
    rng = random.Random(seed)
    verbs = ["reported", "announced", "expected", "recorded", "planned", "reviewed"]
    items = ["revenue", "costs", "profit", "interest", "assets", "liabilities", "a bond", "sales"]
    for _ in range(n_sentences):
        firm = rng.choice(_COMPANIES)
        yield (
            f"{firm} {rng.choice(verbs)} {rng.choice(items)} of {rng.randrange(1, 2000)} "
            f"and {rng.choice(items)} of {rng.randrange(1, 2000)} at {rng.randrange(1, 10)} "
            f"percent for {rng.randrange(1, 6)} years."
        )


def write_splits(
    directory: Path, *, seed: int, sizes: dict[str, int] | None = None
) -> dict[str, Path]:
    """Write train/validation/test JSONL files with no example in two splits; return paths.

    The question space is small enough that independent draws repeat; an example already
    written to an earlier split is drawn again, so validation never contains training data
    and the test split shares nothing with either.
    """
    sizes = sizes or {"train": 1000, "validation": 200, "test": 200}
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    seen: set[str] = set()
    for offset, (split, n) in enumerate(sizes.items()):
        path = directory / f"{split}.jsonl"
        records: list[str] = []
        draw = 0
        while len(records) < n:
            batch = generate_examples(n, seed=(seed * 1000 + offset) * 1000 + draw)
            draw += 1
            for record in batch:
                line = json.dumps(record)
                key = json.dumps([record["question"], record["answer"]])
                if key not in seen and len(records) < n:
                    seen.add(key)
                    records.append(line)
        path.write_text("\n".join(records) + "\n", encoding="utf-8")
        paths[split] = path
    return paths


#: A chat template for the demo tokenizer, which has none (like many base models' tokenizers):
#: ``examples/chat.yaml`` gives it as ``data.chat_template``.
DEMO_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_SYSTEM = "You answer questions about company finances in one sentence."
_INSTRUCTION = "Answer the question about the company's finances in one sentence."


def write_formats(directory: Path) -> None:
    """Write the demo's splits again as chat (``chat/``) and Alpaca (``alpaca/``) records.

    The same examples, so the formats can be compared. Chat: a system turn on every other
    record, and every fourth record continues the conversation of the record before it (two
    assistant turns). Alpaca: the question as ``input`` for two records in three, as the
    ``instruction`` itself (``input`` empty) for the third.
    """
    for split in ("train", "validation", "test"):
        lines = (directory / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        chat, alpaca = [], []
        for index, record in enumerate(records):
            turn = [
                {"role": "user", "content": record["question"]},
                {"role": "assistant", "content": record["answer"]},
            ]
            if index % 4 == 3:
                before = records[index - 1]
                turn = [
                    {"role": "user", "content": before["question"]},
                    {"role": "assistant", "content": before["answer"]},
                    *turn,
                ]
            if index % 2 == 0:
                turn = [{"role": "system", "content": _SYSTEM}, *turn]
            chat.append({"messages": turn})
            if index % 3 == 2:
                alpaca.append(
                    {"instruction": record["question"], "input": "", "output": record["answer"]}
                )
            else:
                alpaca.append(
                    {
                        "instruction": _INSTRUCTION,
                        "input": record["question"],
                        "output": record["answer"],
                    }
                )
        for name, rows in (("chat", chat), ("alpaca", alpaca)):
            (directory / name).mkdir(exist_ok=True)
            text = "".join(json.dumps(row) + "\n" for row in rows)
            (directory / name / f"{split}.jsonl").write_text(text, encoding="utf-8")
