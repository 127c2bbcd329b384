"""The second-process reader: items, return value, errors and early stop."""

from __future__ import annotations

import multiprocessing

import pytest

from subscribers.pipeline import produced_elsewhere
from tests.support.generators import drain


def counting(limit: int):
    for number in range(limit):
        yield number * number
    return "counted"


def failing():
    yield 1
    raise ValueError("bad row source")


def endless():
    number = 0
    while True:
        number += 1
        yield number






def test_items_and_return_value_come_from_the_child():
    assert drain(produced_elsewhere(counting, 5)) == ([0, 1, 4, 9, 16], "counted")


def test_an_exception_in_the_child_is_raised_here():
    items = produced_elsewhere(failing)
    assert next(items) == 1
    with pytest.raises(ValueError, match="bad row source"):
        next(items)


def test_closing_early_stops_the_child():
    items = produced_elsewhere(endless)
    assert next(items) == 1
    children = multiprocessing.active_children()
    assert children
    items.close()
    assert not any(child.is_alive() for child in children)
