"""The chaos suite's fast variant (``python -m bench.chaos --quick``): real monitor
processes behind the fault proxy. Each scenario must end with every workset completed
exactly once (duplicates counted from the steps' own side effects), none stuck, no daemon
exit and the cap never exceeded. Issue 9's items are reproduced one by one in
test_reliability.py; the full-size figures are in bench/chaos/RESULTS.md."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.chaos.__main__ import scenarios
from bench.chaos.harness import run_scenario
from daylib.emulator import start_moto


@pytest.fixture(scope="module")
def chaos_moto() -> Iterator[str]:
    """One emulator for the scenarios (not the suite's: nothing another test made is seen)."""
    server = start_moto(in_process=False)
    yield server.endpoint_url
    server.stop()


@pytest.mark.parametrize("name", ["kill9", "down5", "down60", "throttle", "sns_down", "caps",
                                  "skew"])
def test_chaos_scenario_quick(name: str, chaos_moto: str) -> None:
    fig = run_scenario(scenarios(quick=True)[name], endpoint_url=chaos_moto)
    print(fig.line())
    assert (fig.completed, fig.lost, fig.duplicates, fig.stuck, fig.daemon_exits) == (
        fig.worksets, 0, 0, 0, 0), fig.line()
    assert not fig.cap or fig.max_concurrent <= fig.cap, fig.line()
    if name == "kill9":
        assert fig.kills >= 3, "the storm killed too few monitors to prove anything"
    if name == "throttle":
        assert sum(fig.injected.values()) > 0
    if name == "sns_down":
        assert fig.transitions >= 4 * fig.worksets, "SNS was down for too few transitions"
