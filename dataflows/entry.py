"""How `python -m bytewax.run dataflows.NAME:flow` finds a flow: a module attribute `flow`,
built from the environment when bytewax asks for it (not at import, so tests and the demo
import flow modules without touching Kafka or the environment)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from dataflows.messages import MessageBatch
from dataflows.outputs import Outputs


def flow_attribute(flow_from_env: Callable[[], Dataflow]) -> Callable[[str], Dataflow]:
    """A module-level `__getattr__` whose `flow` is `flow_from_env()`, in a process whose
    telemetry is set up as `streamhouse-<flow>` (streamhouse/telemetry.py)."""

    def __getattr__(name: str) -> Dataflow:
        if name == "flow":
            from streamhouse.telemetry import configure, service_name

            flow = flow_from_env()
            configure(service_name(flow.flow_id))
            return flow
        raise AttributeError(name)

    return __getattr__


def from_env(
    build: Callable[[Source[MessageBatch], Outputs], Dataflow], topics: Iterable[str]
) -> Callable[[], Dataflow]:
    """`flow_from_env` for a flow that needs only its input and outputs."""

    def flow_from_env() -> Dataflow:
        from dataflows.runtime import outputs_from_env, source_from_env
        from streamhouse.config import from_env as settings_from_env

        settings = settings_from_env()
        return build(source_from_env(settings, topics), outputs_from_env(settings))

    return flow_from_env
