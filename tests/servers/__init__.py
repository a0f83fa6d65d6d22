"""Loopback HTTP servers that speak each provider's documented wire format, for the tests."""
