"""Each flow on the simulator input, SIGKILLed three times at random moments and restarted
from its recovery store: the lake ends exactly as an uninterrupted run leaves it.
The long version: `python tests/soak_crash.py --kills 10`."""

from __future__ import annotations

from pathlib import Path

import pytest
from torture import FLOWS, summary, torture


@pytest.mark.parametrize("flow", FLOWS)
def test_kills_and_restarts_leave_the_lake_as_a_clean_run(flow: str, tmp_path: Path) -> None:
    outcome = torture(flow, tmp_path, kills=3)
    print(summary([outcome]))
    assert outcome.kills >= 2, "the run finished before it could be killed: make it longer"
    assert outcome.rows > 100 and outcome.tables >= 2
    assert outcome.differences == []
