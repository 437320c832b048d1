"""The exactly-once tests keep their teeth: with the deduplication token broken on purpose
(tests/support/mutants.py), they fail. Run `python tests/support/mutants.py dedup-token --runs N` for a count."""

from __future__ import annotations

from pathlib import Path

import pytest
from mutants import MUTANTS, run_once

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_an_unstable_dedup_token_fails_the_exactly_once_tests(tmp_path: Path) -> None:
    tests = ["e2e/test_exactly_once.py::test_batch_committed_then_connection_dropped_is_stored_once"]
    caught, ran, summary = run_once(MUTANTS["dedup-token"], tests, tmp_path, 0)
    assert ran, "the mutant never executed: the check proves nothing"
    assert caught, f"the tests passed with the mutant applied ({summary})"
    assert summary.startswith("2 failed"), summary
