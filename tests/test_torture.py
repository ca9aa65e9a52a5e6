"""Each flow on the simulator input, SIGKILLed three times at random moments and restarted
from its recovery store: the lake and the output topics (deduplicated by id) end exactly
as an uninterrupted run leaves them.
The long version: `python tests/soak_crash.py --kills 10`."""

from __future__ import annotations

from pathlib import Path

import pytest
from torture import FLOWS, summary, torture


@pytest.mark.parametrize("flow", FLOWS)
def test_kills_and_restarts_leave_the_lake_and_topics_as_a_clean_run(
    flow: str, tmp_path: Path, kafka_bootstrap: str
) -> None:
    outcome = torture(flow, tmp_path, kills=3, bootstrap=kafka_bootstrap)
    print(summary([outcome]))
    assert outcome.kills >= 2, "the run finished before it could be killed: make it longer"
    assert outcome.rows > 20 and outcome.tables >= 2 and outcome.messages > 0
    assert outcome.differences == []
