"""The pytest plugin examples shown in docs/testing.md (run by tests/test_docs_examples.py)."""

import random

import pytest


@pytest.fixture
def batch():
    return [random.random() for _ in range(4)]  # inside the test's scope


@pytest.mark.deterministic
def test_training_step(batch, seedscope_scope):
    random.seed(seedscope_scope.seed)
    assert batch == [random.random() for _ in range(4)]


@pytest.mark.deterministic(seed=7, strict=True)
def test_with_a_fixed_seed_and_strict_settings():
    random.seed(7)
    expected = random.random()
    random.seed(7)
    assert random.random() == expected


def test_logs_its_seed(seedscope_scope):
    print(seedscope_scope.seed if seedscope_scope else None)  # an ActiveScope, or None
