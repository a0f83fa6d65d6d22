"""Stream an answer token by token from the embedded local model; the last event has the totals.

    python examples/chat_stream.py
"""

from llmos import Client

with Client() as client:
    for event in client.stream(
        "local:gemma-3-270m", "Write one sentence about the sea.", max_tokens=48
    ):
        if event.is_final and event.response is not None:
            usage = event.response.usage
            print(f"\n[{usage.completion_tokens} tokens, {event.response.latency.total_s:.2f} s]")
        else:
            print(event.delta, end="", flush=True)
