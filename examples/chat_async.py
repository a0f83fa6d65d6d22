"""Ask several questions concurrently with AsyncClient on the embedded local model.

The local model runs one generation at a time (calls queue on its lock), off the event loop.

    python examples/chat_async.py
"""

import asyncio

from llmos import AsyncClient

QUESTIONS = [
    "What is the capital of France?",
    "What is the capital of Italy?",
    "What is the capital of Spain?",
]


async def main() -> None:
    async with AsyncClient() as client:
        answers = await asyncio.gather(
            *(client.chat("local:gemma-3-270m", q, max_tokens=24, temperature=0) for q in QUESTIONS)
        )
        for question, answer in zip(QUESTIONS, answers, strict=True):
            print(f"{question} -> {answer.text.strip()}")


asyncio.run(main())
