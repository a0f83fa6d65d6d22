"""Prices, token counts, estimates before a call, costs after it, and budgets.

Importing this package reads no data: the catalog loads on the first estimate or cost.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from llmos.errors import BudgetExceededError
from llmos.types import ChatRequest, Cost, CostEstimate, Latency, Usage

if TYPE_CHECKING:
    from llmos.providers.base import Provider
    from llmos.routing import Target

__all__ = ["Budget", "Pricing", "Reservation", "SpendLedger"]


class Pricing:
    """Prices calls for one client."""

    def __init__(self, compute_usd_per_hour: float | None = None) -> None:
        self.compute_usd_per_hour = compute_usd_per_hour

    def cost(self, target: Target, usage: Usage, latency: Latency) -> Cost:
        """The cost of a finished call from its usage."""
        if target.provider == "local":
            return Cost(total_usd=Decimal(0), reason=None, price_key="local")
        return Cost(total_usd=None, reason=f"no price known for {target}")

    def estimate(
        self, target: Target, request: ChatRequest, provider: Provider | None = None
    ) -> CostEstimate:
        """What ``request`` will cost on ``target`` before it is sent."""
        free = target.provider == "local"
        return CostEstimate(
            target=str(target),
            prompt_tokens=0,
            prompt_tokens_source="none",
            prompt_tokens_exact=False,
            max_output_tokens=request.max_tokens or 0,
            expected_output_tokens=0,
            worst_case_usd=Decimal(0) if free else None,
            expected_usd=Decimal(0) if free else None,
            reason=None if free else f"no price known for {target}",
        )


@dataclass
class Reservation:
    """Money set aside for one call in flight."""

    target: str
    amount: Decimal


class Budget:
    """A spending limit shared by every call of a client, safe across threads and tasks."""

    def __init__(self, limit_usd: Decimal) -> None:
        self.limit = limit_usd
        self._spent = Decimal(0)
        self._reserved = Decimal(0)
        self._lock = threading.Lock()

    def reserve(self, target: str, worst_case: Decimal | None) -> Reservation:
        """Set aside the worst case of a call, or refuse it with BudgetExceededError."""
        with self._lock:
            left = self.limit - self._spent - self._reserved
            if worst_case is None:
                raise BudgetExceededError(
                    f"cannot keep {target} within the budget: its price is unknown",
                    remaining_usd=left,
                )
            if worst_case > left:
                raise BudgetExceededError(
                    f"{target} could cost up to ${worst_case}, but only ${left} of the budget "
                    "is left",
                    worst_case_usd=worst_case,
                    remaining_usd=left,
                )
            self._reserved += worst_case
            return Reservation(target, worst_case)

    def settle(self, reservation: Reservation, cost: Cost | None) -> None:
        """Replace a reservation with what the call actually cost."""
        with self._lock:
            self._reserved -= reservation.amount
            if cost is not None and cost.total_usd is not None:
                self._spent += cost.total_usd
            else:
                self._spent += reservation.amount

    def release(self, reservation: Reservation) -> None:
        """Drop a reservation for a call that spent nothing."""
        with self._lock:
            self._reserved -= reservation.amount

    def spent(self) -> Decimal:
        """What has been spent so far."""
        with self._lock:
            return self._spent


class SpendLedger:
    """What a client has spent, by provider and model; safe across threads and tasks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_target: dict[str, Decimal] = {}
        self._unpriced: dict[str, int] = {}
        self._calls: dict[str, int] = {}

    def record(self, target: Target, cost: Cost | None) -> None:
        """Book one call's cost (an unknown cost is counted, never priced at zero)."""
        key = str(target)
        with self._lock:
            self._calls[key] = self._calls.get(key, 0) + 1
            if cost is None or cost.total_usd is None:
                self._unpriced[key] = self._unpriced.get(key, 0) + 1
            else:
                self._by_target[key] = self._by_target.get(key, Decimal(0)) + cost.total_usd

    def report(self) -> dict[str, Any]:
        """Totals: overall, by provider, by target, and how many calls had no known price."""
        with self._lock:
            by_provider: dict[str, Decimal] = {}
            for key, amount in self._by_target.items():
                provider = key.split(":", 1)[0]
                by_provider[provider] = by_provider.get(provider, Decimal(0)) + amount
            return {
                "total_usd": sum(self._by_target.values(), Decimal(0)),
                "by_provider": by_provider,
                "by_model": dict(self._by_target),
                "calls": dict(self._calls),
                "unpriced_calls": dict(self._unpriced),
            }
