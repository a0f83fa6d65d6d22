"""The one place the llmos version is defined."""

__version__ = "0.1.0"
