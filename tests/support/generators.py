"""Helpers for code that yields items and returns a value."""

from __future__ import annotations


def drain(generator) -> tuple[list, object]:
    """Every item ``generator`` yields, and what it returns."""
    items = []
    while True:
        try:
            items.append(next(generator))
        except StopIteration as stop:
            return items, stop.value
