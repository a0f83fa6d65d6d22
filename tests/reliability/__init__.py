"""Reliability end to end: retries, deadlines, fallbacks, circuit breaker, rate limits, secrets."""
