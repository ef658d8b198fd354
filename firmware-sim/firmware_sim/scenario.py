"""Scenario files: what happens to which simulated device, and when.

    name: smoke in stairwell 1
    duration_s: 120            # optional: stop after this much scenario time
    steps:
      - {at: 30, device: smoke-hp-b1-u1, ramp: {smoke_density: 15.0}, over: 10}
      - {at: 60, device: bin-hp-refuse-1, set: {fill_pct: 95}}
      - {at: 70, device: manhole-hp-road-1, set: {lid_open: true, tilt_deg: 30}}
      - {at: 80, device: smoke-hp-b2-u1, fault: silent}    # silent | garbage | bad_crc | none
      - {at: 90, device: smoke-hp-b1-u2, raw: [65535, 250, 90, 0]}   # registers as sent
      - {at: 95, device: smoke-hp-b1-u2, raw: null}        # back to the model's values

``set`` and ``ramp`` take the fields of the device's reading (for a bin,
``fill_pct`` instead of ``distance_cm``). Times are scenario seconds; the
simulator can run them faster than real time. What happens once
``duration_s`` has passed is the simulator's choice (:class:`AfterScenario`),
not the file's: the same scenario ends a test and keeps a demo running.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sc.contracts.topics import ID_PATTERN

from .ptybus import Fault

__all__ = ["AfterScenario", "Scenario", "ScenarioError", "Step", "load_scenario"]


class ScenarioError(Exception):
    pass


class AfterScenario(StrEnum):
    """What the simulated devices do once the scenario's ``duration_s`` has passed."""

    STOP = "stop"  # the simulator ends and its devices vanish
    HOLD = "hold"  # the devices keep running in the state the scenario left them in
    REPEAT = "repeat"  # the scenario's devices go back to how they started, and it plays again


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: float = Field(ge=0, description="scenario seconds from start")
    device: str = Field(pattern=ID_PATTERN.pattern)
    set: dict[str, float | bool] | None = None
    ramp: dict[str, float] | None = None
    over: float = Field(default=0, ge=0, description="ramp duration, seconds")
    fault: Fault | None = None
    raw: list[int] | None = Field(default=None, description="registers to send instead of the model's")
    clear_raw: bool = Field(default=False, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _raw_null(cls, data: Any) -> Any:
        if isinstance(data, dict) and "raw" in data and data["raw"] is None:
            data = {**data, "clear_raw": True}
        return data

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        n = sum(x is not None for x in (self.set, self.ramp, self.fault, self.raw)) + int(self.clear_raw)
        if n != 1:
            raise ValueError("each step does exactly one of: set, ramp, fault, raw")
        if self.ramp is not None and self.over <= 0:
            raise ValueError("a ramp needs `over` > 0 seconds")
        return self


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "unnamed"
    duration_s: float | None = Field(default=None, gt=0)
    steps: list[Step] = Field(default_factory=list)


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        return Scenario.model_validate(data)
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{p}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ScenarioError(f"{p}: {where}: {first['msg']}") from exc
