"""Issue 35's guard: the tiny run and bench of tests/parity_case.py produce what the code before the chain-plan
refactor produced (tests/fixtures/parity.json, recorded from commit 14e1ac9): bit for bit on a machine of the
recording's instruction set and torch, within magnitude-scaled tolerances on any other."""

from __future__ import annotations

import json
from pathlib import Path

from parity_case import compare, record

FIXTURE = Path(__file__).parent / "fixtures" / "parity.json"


def test_tiny_run_and_bench_match_the_recording(tmp_path: Path) -> None:
    recorded = json.loads(FIXTURE.read_text())
    now = json.loads(json.dumps(record(tmp_path)))  # as the recording reads back (tuples as lists)
    problems = compare(recorded, now)
    assert not problems, "\n".join(problems[:20])
