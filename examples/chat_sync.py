"""Ask the embedded local model a question, synchronously. Runs offline, no key needed.

    python examples/chat_sync.py
"""

from llmos import Client

with Client() as client:
    response = client.chat(
        "local:gemma-3-270m", "What is the capital of France?", max_tokens=32, temperature=0
    )
    print(response.text.strip())
    cost = response.cost.total_usd if response.cost is not None else None
    print(
        f"{response.usage.prompt_tokens} tokens in, {response.usage.completion_tokens} out, "
        f"{response.latency.total_s:.2f} s, API cost ${cost}"
    )
