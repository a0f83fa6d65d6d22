"""Estimate a batch job across models before running it, then run it locally within a budget.

    pip install 'llmos[local]'
    python examples/cost_estimator.py

Nothing is sent to a paid API: the estimates come from llmos's price catalog (each names its
price source and date), and the job runs on the embedded local model, priced by the wall time it
takes at the hourly compute price below. The budget refuses calls once it is spent.
"""

from __future__ import annotations

from decimal import Decimal

from llmos import BudgetExceededError, Client

QUESTIONS = [
    "In one sentence, what is a hash table?",
    "In one sentence, why do databases use indexes?",
    "In one sentence, what does a load balancer do?",
    "In one sentence, what is the difference between a process and a thread?",
    "In one sentence, what is eventual consistency?",
]
SYSTEM = "Answer in one short sentence."
MAX_TOKENS = 48

#: Candidates for the job; none of them is scheduled for retirement.
CANDIDATES = [
    "openai:gpt-5.4-mini",
    "openai:gpt-5.4",
    "ai21:jamba-mini",
    "huggingface:meta-llama/Llama-3.1-8B-Instruct:nebius",
    "local:gemma-3-270m",
]
LOCAL = "local:gemma-3-270m"
COMPUTE_USD_PER_HOUR = 0.50  # what an hour of this machine costs you
BUDGET_USD = Decimal("0.002")


def messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def usd(value: Decimal | None) -> str:
    return "unknown" if value is None else f"${value:.6f}"


def estimate_job(client: Client) -> None:
    """Print what the whole job would cost on each candidate, cheapest first."""
    rows = []
    for model in CANDIDATES:
        estimates = [client.estimate(model, messages(q), max_tokens=MAX_TOKENS) for q in QUESTIONS]
        worst = [e.worst_case_usd for e in estimates]
        expected = [e.expected_usd for e in estimates]
        rows.append(
            (
                None if None in expected else sum(expected, Decimal(0)),  # type: ignore[arg-type]
                None if None in worst else sum(worst, Decimal(0)),  # type: ignore[arg-type]
                model,
                sum(e.prompt_tokens for e in estimates),
                all(e.prompt_tokens_exact for e in estimates),
                estimates[0],
            )
        )
    rows.sort(key=lambda r: (r[0] is None, r[0] or 0))
    print(f"Estimate for {len(QUESTIONS)} requests, max_tokens={MAX_TOKENS}:")
    for expected, worst, model, tokens, exact, first in rows:
        approx = "" if exact else "~"
        source = f"{first.price_source} ({first.price_as_of})" if first.price_key else first.reason
        print(
            f"  {model:55} {approx}{tokens:>5} prompt tokens  expected {usd(expected):>11}  "
            f"worst {usd(worst):>11}  {source}"
        )


def run_job() -> None:
    """Run the job on the local model; the budget stops it once the compute time is spent."""
    with Client(budget_usd=BUDGET_USD, compute_usd_per_hour=COMPUTE_USD_PER_HOUR) as client:
        # A per-call cap refuses a paid model whose worst case is higher, before anything is sent
        # (so this needs no API key).
        try:
            client.chat(
                "openai:gpt-5.4",
                messages(QUESTIONS[0]),
                max_tokens=MAX_TOKENS,
                max_cost_usd="0.0001",
            )
        except BudgetExceededError as error:
            print(f"refused before sending: {error}\n")
        for question in QUESTIONS:
            try:
                response = client.chat(LOCAL, messages(question), max_tokens=MAX_TOKENS)
            except BudgetExceededError as error:
                print(f"stopped: {error}")
                break
            cost = response.cost.total_usd if response.cost else None
            print(f"- {question}\n  {response.text.strip()}  [{usd(cost)}]")
        spend = client.spend()
        print(f"spent {usd(spend['total_usd'])} of ${BUDGET_USD} (by model: {spend['by_model']})")


def main() -> None:
    with Client() as client:
        estimate_job(client)
    print()
    run_job()


if __name__ == "__main__":
    main()
