"""The vision process: camera thread + :class:`GatePipeline`, apart from the gateway's I/O.

The gateway starts one per gate (``multiprocessing``, spawn). It talks to its
parent through two bounded queues: outcomes, camera changes and stats go
out; grants from elsewhere (remote open, cards) and the door contact come
in. Every queue read has a timeout and a stop event ends it. The gallery is
reopened from disk whenever the parent (a ``gallery_put`` command) changed it.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sc.config.schema import Gate
from sc.contracts.messages import EntryMethod
from vision.models import DEFAULT_DIR as DEFAULT_MODELS_DIR

__all__ = ["VisionSpec", "vision_main"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VisionSpec:
    """What the vision process needs, picklable."""

    gate: Gate
    base_dir: Path
    gallery_path: Path
    ledger_path: Path
    site: str
    pass_key: Path | None
    log_level: int = logging.INFO
    models_dir: Path = DEFAULT_MODELS_DIR


def build_pipeline(spec: VisionSpec) -> tuple[Any, Any]:
    """The pipeline and the gallery it searches (also used by ``sc gate replay``)."""
    from vision.engines import engine_for

    from .gallery import Gallery
    from .ledger import PassLedger
    from .passcheck import PassChecker
    from .pipeline import GatePipeline, VisionSettings

    gallery = Gallery(spec.gallery_path, model=spec.gate.face_model)
    holder = {"index": gallery.index()}
    checker = None
    if spec.pass_key is not None:
        from sc.passes import load_public_key

        checker = PassChecker(
            public_key=load_public_key(spec.pass_key),
            site=spec.site,
            gate=spec.gate.id,
            ledger=PassLedger(spec.ledger_path),
        )
    pipeline = GatePipeline(
        settings=VisionSettings.from_gate(spec.gate),
        engine=engine_for(spec.gate.face_model, spec.models_dir),
        gallery=lambda: holder["index"],
        passes=checker,
    )

    def refresh() -> None:
        new = gallery.index_if_changed()
        if new is not None:
            holder["index"] = new
            log.info("gate=%s gallery reloaded: %d residents", spec.gate.id, len(new))

    return pipeline, refresh


def vision_main(spec: VisionSpec, out_q: mp.Queue[Any], in_q: mp.Queue[Any], stop: Any) -> None:
    """The vision process's body: runs until ``stop`` (a multiprocessing Event) is set."""
    logging.basicConfig(level=spec.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .frames import Camera, open_source

    pipeline, refresh = build_pipeline(spec)
    cam_cfg = spec.gate.camera
    assert cam_cfg is not None

    def on_state(online: bool, reason: str) -> None:
        _put(out_q, ("camera", online, reason, time.time()))

    camera = Camera(
        lambda: open_source(cam_cfg, spec.base_dir),
        stale_after_s=cam_cfg.stale_after_s,
        reconnect_max_s=cam_cfg.reconnect_max_s,
        on_state=on_state,
        name=spec.gate.id,
    )
    camera.start()
    log.info("gate=%s vision loop started on %s", spec.gate.id, cam_cfg.source)
    last_refresh = last_stats = time.monotonic()
    busy = 0.0
    try:
        while not stop.is_set():
            _drain_inputs(in_q, pipeline)
            got = camera.latest(timeout=0.5)
            now = time.monotonic()
            if now - last_refresh > 1.0:
                refresh()
                last_refresh = now
            if now - last_stats > 10.0:
                stats = {
                    **asdict(pipeline.stats),
                    **asdict(camera.counters),
                    "busy_pct": round(100 * busy / (now - last_stats), 1),
                }
                _put(out_q, ("stats", stats))
                last_stats, busy = now, 0.0
            if got is None:
                continue
            frame, t = got
            t0 = time.monotonic()
            for outcome in pipeline.process(frame, t):
                _put(out_q, ("outcome", outcome))
            busy += time.monotonic() - t0
    finally:
        camera.stop()
        log.info("gate=%s vision loop stopped", spec.gate.id)


def _drain_inputs(in_q: mp.Queue[Any], pipeline: Any) -> None:
    while True:
        try:
            msg = in_q.get_nowait()
        except queue.Empty:
            return
        if msg[0] == "grant":
            pipeline.grant(msg[1], EntryMethod(msg[2]))
        elif msg[0] == "door":
            pipeline.door(msg[1], open=msg[2])


def _put(q: mp.Queue[Any], item: Any) -> None:
    try:
        q.put(item, timeout=2.0)
    except queue.Full:  # the parent is gone or stuck; it will restart us
        log.error("outcome queue full: dropped %s", item[0])
