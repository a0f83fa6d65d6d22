"""Budgets and the spend ledger, safe across threads and asyncio tasks.

A call reserves its worst-case estimate before anything is sent and is refused when that is
more than the budget has left (spent plus reserved by calls in flight). When the call ends the
reservation is replaced by the actual cost; a call that fails before sending releases it. So
the total spent can only pass the limit by what the estimates under-counted, never by the
number of calls in flight.

The locks are held only for arithmetic and never across an ``await``, so the same objects serve
threads and tasks alike.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from llmos.errors import BudgetExceededError
from llmos.pricing.catalog import canonical_provider
from llmos.types import Cost

if TYPE_CHECKING:
    from llmos.routing import Target

__all__ = ["Budget", "Reservation", "SpendLedger"]

_ZERO = Decimal(0)


def _usd(amount: Decimal) -> str:
    return format(amount.normalize(), "f") if amount else "0"


@dataclass
class Reservation:
    """Money set aside for one call in flight."""

    target: str
    amount: Decimal


class Budget:
    """A spending limit shared by every call of a client."""

    def __init__(self, limit_usd: Decimal) -> None:
        self.limit = limit_usd
        self._spent = _ZERO
        self._reserved = _ZERO
        self._lock = threading.Lock()

    def reserve(self, target: str, worst_case: Decimal | None) -> Reservation:
        """Set aside the worst case of a call, or refuse it with BudgetExceededError."""
        provider, _, model = target.partition(":")
        with self._lock:
            left = self.limit - self._spent - self._reserved
            if worst_case is None:
                raise BudgetExceededError(
                    f"cannot keep {target} within the budget: its price is unknown; register "
                    "its price with llmos.pricing.register() or call it without a budget",
                    remaining_usd=left,
                    provider=provider,
                    model=model,
                )
            if worst_case > left:
                raise BudgetExceededError(
                    f"{target} could cost up to ${_usd(worst_case)}, but only "
                    f"${_usd(max(left, _ZERO))} of the ${_usd(self.limit)} budget is left; "
                    "lower max_tokens or raise budget_usd",
                    worst_case_usd=worst_case,
                    remaining_usd=left,
                    provider=provider,
                    model=model,
                )
            self._reserved += worst_case
            return Reservation(target, worst_case)

    def settle(self, reservation: Reservation, cost: Cost | None) -> None:
        """Replace a reservation with what the call actually cost (the worst case if unknown)."""
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

    def reserved(self) -> Decimal:
        """What calls in flight have set aside."""
        with self._lock:
            return self._reserved

    def remaining(self) -> Decimal:
        """What is left for new calls (may be negative after an under-estimated call)."""
        with self._lock:
            return self.limit - self._spent - self._reserved


class SpendLedger:
    """What a client has spent, by provider and model."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_target: dict[str, Decimal] = {}
        self._compute: dict[str, Decimal] = {}
        self._unpriced: dict[str, int] = {}
        self._calls: dict[str, int] = {}

    def record(self, target: Target, cost: Cost | None) -> None:
        """Book one call's cost (an unknown cost is counted, never priced at zero)."""
        key = f"{canonical_provider(target.provider)}:{target.model}"
        with self._lock:
            self._calls[key] = self._calls.get(key, 0) + 1
            if cost is None or cost.total_usd is None:
                self._unpriced[key] = self._unpriced.get(key, 0) + 1
                return
            self._by_target[key] = self._by_target.get(key, _ZERO) + cost.total_usd
            if cost.compute_usd:
                self._compute[key] = self._compute.get(key, _ZERO) + cost.compute_usd

    def report(self) -> dict[str, Any]:
        """Totals: overall, by provider, by model, compute, and calls without a known price.

        ``by_model`` is keyed by ``provider:model`` with provider aliases resolved
        (``hf`` -> ``huggingface``).
        """
        with self._lock:
            by_provider: dict[str, Decimal] = {}
            for key, amount in self._by_target.items():
                provider = key.split(":", 1)[0]
                by_provider[provider] = by_provider.get(provider, _ZERO) + amount
            return {
                "total_usd": sum(self._by_target.values(), _ZERO),
                "by_provider": by_provider,
                "by_model": dict(self._by_target),
                "compute_usd": sum(self._compute.values(), _ZERO),
                "calls": dict(self._calls),
                "unpriced_calls": dict(self._unpriced),
            }
