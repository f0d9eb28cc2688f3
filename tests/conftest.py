"""Fixtures shared by the test modules (``load_robot`` caches, so these are cheap)."""
import pytest

from mjxmimic.robots import load_robot


@pytest.fixture(scope="module")
def k1():
    return load_robot("k1")


@pytest.fixture(scope="module")
def g1():
    return load_robot("g1")
