"""Face tracks: the same face followed across frames, so it is embedded once, not once per frame."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from vision.faces import Embedding, FaceBox

from .gallery import Match

__all__ = ["FaceTrack", "FaceTracker"]


@dataclass
class FaceTrack:
    id: int
    box: FaceBox
    first_t: float
    last_t: float
    hits: int = 1
    history: deque[tuple[float, FaceBox]] = field(default_factory=lambda: deque(maxlen=50))
    first_visible_t: float | None = None  # first frame the face was whole and big enough
    embedding: Embedding | None = None  # the looks fused: their embeddings' sum, normalised
    look_sum: Embedding | None = None  # the sum of the looks that count (vision.quality)
    looks: int = 0  # looks fused into ``embedding``
    clear_looks: int = 0  # ... of them with a detector score over the pipeline's poor_score
    quality_reason: str = ""  # why the last of them did not count
    embed_quality: float = 0.0
    embed_height: int = 0  # face height when it was embedded
    embeddings: int = 0  # how many times it was embedded at the decision size (1, or 2 when the first was poor)
    approach: bool = False  # the embedding was taken on the approach (the face not yet at the decision size)
    approach_looks: int = 0  # embeddings taken on the approach (a second only if the first was unclear)
    match: Match | None = None
    decided: str | None = None  # "grant" / "refuse" / "stranger-pending"
    spoof_reason: str | None = None  # the last liveness check that failed, and why
    spoof_votes: int = 0  # how many checks failed
    spoof_strong: int = 0  # ... of them with a whole rectangle round the face
    checks: int = 0  # frames the liveness checks ran on (the face whole and big enough)
    stranger_reported: bool = False
    visitor: bool = False  # a visitor pass was granted while this face was at the gate: not a loitering stranger

    @property
    def age(self) -> float:
        return self.last_t - self.first_t


class FaceTracker:
    """Greedy IoU / centre-distance association of detections to tracks."""

    def __init__(self, *, max_idle_s: float = 1.5, min_iou: float = 0.2) -> None:
        self.max_idle_s = max_idle_s
        self.min_iou = min_iou
        self.tracks: dict[int, FaceTrack] = {}
        self._next = 1

    def update(self, boxes: list[FaceBox], t: float) -> list[FaceTrack]:
        """Attach each box to a track (new ones for the rest); returns the tracks seen in this frame."""
        pairs: list[tuple[float, int, int]] = []
        live = list(self.tracks.values())
        for bi, box in enumerate(boxes):
            for track in live:
                score = box.iou(track.box)
                if score < self.min_iou:
                    # a face that moved fast between detections: accept a close centre instead
                    (cx, cy), (tx, ty) = box.center, track.box.center
                    if abs(cx - tx) + abs(cy - ty) < 0.6 * max(track.box.width, box.width):
                        score = self.min_iou
                    else:
                        continue
                pairs.append((score, bi, track.id))
        pairs.sort(reverse=True)
        used_boxes: set[int] = set()
        used_tracks: set[int] = set()
        seen: list[FaceTrack] = []
        for _, bi, tid in pairs:
            if bi in used_boxes or tid in used_tracks:
                continue
            used_boxes.add(bi)
            used_tracks.add(tid)
            track = self.tracks[tid]
            track.box = boxes[bi]
            track.last_t = t
            track.hits += 1
            track.history.append((t, boxes[bi]))
            seen.append(track)
        for bi, box in enumerate(boxes):
            if bi not in used_boxes:
                track = FaceTrack(self._next, box, t, t)
                track.history.append((t, box))
                self.tracks[track.id] = track
                self._next += 1
                seen.append(track)
        return seen

    def expire(self, t: float) -> list[FaceTrack]:
        """Drop and return the tracks not seen for ``max_idle_s``."""
        gone = [tr for tr in self.tracks.values() if t - tr.last_t > self.max_idle_s]
        for tr in gone:
            del self.tracks[tr.id]
        return gone
