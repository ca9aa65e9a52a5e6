"""The traffic simulator: seeded, deterministic, realistic and deliberately messy."""

from models.simulator.generator import Incident, SimConfig, SimRecord, SimStats, Simulator
from models.simulator.mess import MALFORMED_KINDS

__all__ = ["MALFORMED_KINDS", "Incident", "SimConfig", "SimRecord", "SimStats", "Simulator"]
