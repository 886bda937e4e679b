"""Seed scenarios: realistic data files in `seeds/<name>/` loaded through the same use cases as
the API (`inventory seed demo`, and the first `make run`)."""

from .loader import LoadReport, is_loaded, load, steps_in
from .scenario import Scenario, ScenarioError, read

__all__ = [
    "LoadReport",
    "Scenario",
    "ScenarioError",
    "is_loaded",
    "load",
    "read",
    "steps_in",
]
