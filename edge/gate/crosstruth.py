"""Door-line crossings counted by hand, and how the gate's counter did against them.

An installer (or a benchmark) counts the people crossing the door line in a piece of footage by eye and writes
them down in a truth file; ``sc gate replay FOOTAGE --truth FILE`` runs the gate's own pipeline over it and
compares (:func:`compare_crossings`): each counted crossing is matched to at most one the counter found, in
the same direction, within ``tolerance_s``; the rest are missed (counted by hand, not found) or invented
(found, not counted). A truth file (JSON)::

    {"video": "vtest.avi",
     "line": {"a": [0.55, 0.25], "b": [0.55, 0.70], "inside": "right"},
     "tolerance_s": 1.0,
     "rule": "the bottom centre of the body crosses the line within its ends",
     "crossings": [{"t": 3.2, "direction": "in", "people": 1}, ...]}

``line`` is the door line the crossings were counted on (the gate config's ``door_line``): replay uses it when
no other is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sc.config.schema import DoorLine

from .pipeline import GateOutcome

__all__ = ["CrossingTruth", "TruthCrossing", "TruthError", "compare_crossings", "load_truth"]


class TruthError(ValueError):
    """A truth file that cannot be read; the message says where."""


class TruthCrossing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    t: float = Field(ge=0.0, description="seconds from the start of the footage")
    direction: Literal["in", "out"]
    people: int = Field(default=1, ge=1, le=20, description="people crossing together (a pair walking close: 2)")
    who: str = Field(default="", max_length=200, description="a note to tell crossings apart")


class CrossingTruth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: str = ""
    line: DoorLine
    tolerance_s: float = Field(default=1.0, gt=0.0, le=10.0, description="a found crossing this near matches")
    rule: str = ""
    notes: str = Field(default="", description="who counted, how sure, what was left out and why")
    crossings: list[TruthCrossing]


def load_truth(path: Path) -> CrossingTruth:
    """The truth file at ``path``; :class:`TruthError` naming the file and the field at fault."""
    try:
        return CrossingTruth.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise TruthError(f"{path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise TruthError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise TruthError(f"{path}: {where}: {first['msg']}") from exc


@dataclass
class CountReport:
    """Found against counted: people (a pair is 2) and crossings, matched, missed and invented."""

    true_crossings: int
    found_crossings: int
    matched: list[tuple[TruthCrossing, float, int]] = field(default_factory=list)  # truth, found t, found people
    missed: list[TruthCrossing] = field(default_factory=list)
    invented: list[tuple[float, str, int]] = field(default_factory=list)  # t, direction, people

    def to_json(self) -> dict[str, Any]:
        true_people = sum(c.people for c, _, _ in self.matched) + sum(c.people for c in self.missed)
        found_people = sum(p for _, _, p in self.matched) + sum(p for _, _, p in self.invented)
        return {
            "crossings": {
                "true": self.true_crossings,
                "found": self.found_crossings,
                "matched": len(self.matched),
                "missed": len(self.missed),
                "invented": len(self.invented),
            },
            "people": {
                "true": true_people,
                "found": found_people,
                # of the crossings both saw: how often the counter's head count equals the hand count
                "right_count": sum(1 for c, _, p in self.matched if c.people == p),
            },
            "missed": [{"t": c.t, "direction": c.direction, "people": c.people} for c in self.missed],
            "invented": [{"t": round(t, 2), "direction": d, "people": p} for t, d, p in self.invented],
        }


def compare_crossings(found: list[GateOutcome], truth: CrossingTruth, *, start: float = 0.0) -> CountReport:
    """Match the pipeline's crossings (times ``start`` + seconds into the footage) to the hand-counted ones:
    in time order, each to the nearest unmatched found crossing of the same direction within the tolerance."""
    mine = sorted(
        ((o.t - start, o.direction, o.people or 1) for o in found if o.what == "crossing" and o.direction is not None),
        key=lambda c: c[0],
    )
    used = [False] * len(mine)
    report = CountReport(true_crossings=len(truth.crossings), found_crossings=len(mine))
    for c in sorted(truth.crossings, key=lambda c: c.t):
        best: int | None = None
        for i, (t, d, _) in enumerate(mine):
            if used[i] or d != c.direction or abs(t - c.t) > truth.tolerance_s:
                continue
            if best is None or abs(t - c.t) < abs(mine[best][0] - c.t):
                best = i
        if best is None:
            report.missed.append(c)
        else:
            used[best] = True
            report.matched.append((c, mine[best][0], mine[best][2]))
    report.invented = [(t, d, p) for (t, d, p), u in zip(mine, used, strict=True) if not u]
    return report
