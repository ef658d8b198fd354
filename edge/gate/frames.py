"""Frame sources behind one interface, and the camera thread that always hands out the newest frame.

Sources: ``usb:<n>`` (V4L2), ``rtsp://`` / ``http(s)://`` streams (FFmpeg),
``file:<path>`` video files and ``synthetic:<scene>`` (firmware-sim's gate
scenes). :class:`Camera` reads its source in a thread into a single slot:
the vision loop takes the newest frame and frames it was too slow for are
dropped and counted, never queued. A source that fails, ends, stops
delivering (``stale_after_s``) or freezes (the same picture over and over)
is reported offline once, reopened with growing pauses up to
``reconnect_max_s``, and reported online again once frames flow.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from sc.config.schema import CameraConfig

__all__ = [
    "Camera",
    "CameraCounters",
    "FrameSource",
    "FrameSourceError",
    "OpenCvSource",
    "SyntheticSource",
    "open_source",
]

log = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]


class FrameSourceError(Exception):
    """A source that cannot be opened or read."""


class FrameSource(Protocol):
    name: str

    def open(self) -> None: ...

    def read(self) -> Frame | None:
        """The next frame; None when the source has ended or failed (the camera reopens it)."""
        ...

    def close(self) -> None: ...


class OpenCvSource:
    """A USB camera, a network stream or a video file, through OpenCV's VideoCapture."""

    def __init__(self, cfg: CameraConfig, base_dir: Path | None = None, *, pace: bool | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.source
        self._base = base_dir or Path.cwd()
        self._cap: cv2.VideoCapture | None = None
        # a file plays at its own frame rate in the live gate (as a camera would), as fast as possible in replay
        self._pace = pace if pace is not None else cfg.source.startswith("file:")
        self._next_t = 0.0
        self._period = 1.0 / cfg.fps

    def open(self) -> None:
        src = self.cfg.source
        if src.startswith("usb:"):
            cap = cv2.VideoCapture(int(src[4:]), cv2.CAP_V4L2)
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.cfg.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.cfg.height)
            cap.set(cv2.CAP_PROP_FPS, self.cfg.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        elif src.startswith("file:"):
            path = Path(src[5:])
            path = path if path.is_absolute() else self._base / path
            if not path.exists():
                raise FrameSourceError(f"video file {path} does not exist")
            cap = cv2.VideoCapture(str(path))
            fps = cap.get(cv2.CAP_PROP_FPS)
            if fps and fps > 0:
                self._period = 1.0 / fps
        else:
            timeout_ms = int(self.cfg.stale_after_s * 1000)
            cap = cv2.VideoCapture(
                src,
                cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms],
            )
        if not cap.isOpened():
            cap.release()
            raise FrameSourceError(f"cannot open camera source {src}")
        self._cap = cap
        self._next_t = time.monotonic()

    def read(self) -> Frame | None:
        if self._cap is None:
            return None
        if self._pace:
            delay = self._next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next_t = max(self._next_t + self._period, time.monotonic() - self._period)
        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        return np.asarray(frame, dtype=np.uint8)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class SyntheticSource:
    """A firmware-sim gate scene as a camera (paced at the scene's frame rate), for tests and the demo.

    Fault injection for tests: ``fail_open`` makes opening fail that many times;
    ``end_after`` ends the stream after that many frames (a dropped link);
    ``freeze_after`` repeats one frame forever after that many (a frozen encoder).
    """

    def __init__(
        self,
        scene: str,
        *,
        lighting: str = "day",
        loop: bool = True,
        pace: bool = True,
        fail_open: int = 0,
        end_after: int | None = None,
        freeze_after: int | None = None,
        qr_token: str | None = None,
        speed: float = 1.0,
        seed: int = 0,
    ) -> None:
        from firmware_sim.gatescene import build_scene

        self.name = f"synthetic:{scene}"
        self._scene = build_scene(scene, lighting=lighting, qr_token=qr_token, seed=seed)
        self._loop = loop
        self._pace = pace
        self._speed = speed
        self._fail_open = fail_open
        self._end_after = end_after
        self._freeze_after = freeze_after
        self._it: Iterator[Frame] = iter(())
        self._count = 0
        self._frozen: Frame | None = None
        self._next_t = 0.0

    def open(self) -> None:
        if self._fail_open > 0:
            self._fail_open -= 1
            raise FrameSourceError(f"{self.name}: injected open failure")
        self._it = (f for f, _ in self._scene.frames())
        self._next_t = time.monotonic()

    def read(self) -> Frame | None:
        if self._pace:
            delay = self._next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            period = 1.0 / (self._scene.fps * self._speed)
            self._next_t = max(self._next_t + period, time.monotonic() - period)
        self._count += 1
        if self._end_after is not None and self._count > self._end_after:
            self._end_after = None  # the link comes back after one reconnect
            return None
        if self._frozen is not None:
            return self._frozen.copy()
        frame = next(self._it, None)
        if frame is None and self._loop:
            self._it = (f for f, _ in self._scene.frames())
            frame = next(self._it, None)
        if frame is not None and self._freeze_after is not None and self._count >= self._freeze_after:
            self._frozen = frame
        return frame

    def close(self) -> None:
        self._it = iter(())


def open_source(cfg: CameraConfig, base_dir: Path | None = None) -> FrameSource:
    """The source a camera config names.

    ``synthetic:<scene>?lighting=dusk&speed=2&loop=0&seed=1&token_file=pass.txt`` plays a
    firmware-sim scene (options: lighting, playback speed, play once, the scene's seed, the visitor
    pass the scene's visitor holds up, read from a file relative to the config).
    """
    if cfg.source.startswith("synthetic:"):
        scene, _, query = cfg.source.split(":", 1)[1].partition("?")
        opts = dict(urllib.parse.parse_qsl(query, strict_parsing=bool(query)))
        token = None
        if "token_file" in opts:
            path = Path(opts["token_file"])
            token = (path if path.is_absolute() else (base_dir or Path.cwd()) / path).read_text().strip()
        return SyntheticSource(
            scene,
            lighting=opts.get("lighting", "day"),
            seed=int(opts.get("seed", "0")),
            loop=opts.get("loop", "1") != "0",
            speed=float(opts.get("speed", "1")),
            qr_token=token,
        )
    return OpenCvSource(cfg, base_dir)


@dataclass
class CameraCounters:
    frames: int = 0
    dropped: int = 0  # frames overwritten before the loop took them
    reconnects: int = 0
    offline_reports: int = 0


class Camera:
    """Reads a source in a thread; :meth:`latest` returns the newest frame not yet handed out.

    ``on_state(online, reason)`` is called once per change (from the camera's thread).
    """

    def __init__(
        self,
        factory: Callable[[], FrameSource],
        *,
        stale_after_s: float = 3.0,
        reconnect_max_s: float = 30.0,
        on_state: Callable[[bool, str], None] | None = None,
        name: str = "camera",
    ) -> None:
        self._factory = factory
        self.stale_after_s = stale_after_s
        self.reconnect_max_s = reconnect_max_s
        self._on_state = on_state or (lambda online, reason: None)
        self.name = name
        self.counters = CameraCounters()
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._frame_t = 0.0
        self._seq = 0
        self._taken = 0
        self._stop = threading.Event()
        self._online: bool | None = None
        self._state_lock = threading.Lock()
        self._last_new = time.monotonic()
        self._read_since: float | None = None  # when the read in progress began (None: not in a read)
        self._last_print = b""  # kept across reconnects: a reopened, still frozen source is not "online"
        self._thread = threading.Thread(target=self._run, name=f"camera-{name}", daemon=True)
        self._watch = threading.Thread(target=self._watchdog, name=f"camera-watch-{name}", daemon=True)

    @property
    def online(self) -> bool:
        return bool(self._online)

    def start(self) -> None:
        self._thread.start()
        self._watch.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._watch.join(timeout=5)

    def latest(self, timeout: float) -> tuple[Frame, float] | None:
        """The newest frame (and its capture time, ``time.time()``) not handed out before; None on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > self._taken or self._stop.is_set(), timeout=timeout):
                return None
            if self._frame is None or self._seq == self._taken:
                return None
            self.counters.dropped += self._seq - self._taken - 1
            self._taken = self._seq
            return self._frame, self._frame_t

    # ------------------------------------------------------------------ the reading thread

    def _set_state(self, online: bool, reason: str) -> None:
        with self._state_lock:  # the reading thread and the watchdog both report
            if self._online is online:
                return
            self._online = online
            if online:
                log.info("camera %s online (%s)", self.name, reason)
            else:
                self.counters.offline_reports += 1
                log.warning("camera %s OFFLINE: %s", self.name, reason)
            try:
                self._on_state(online, reason)
            except Exception:
                log.exception("camera %s: state callback failed", self.name)

    def _run(self) -> None:
        first_pause = min(0.5, self.reconnect_max_s)
        backoff = first_pause
        while not self._stop.is_set():
            try:
                source = self._factory()
            except Exception as exc:  # a source that cannot even be built (unknown scene, bad URL)
                self._set_state(False, f"cannot open {self.name}'s camera source: {exc}")
                self._stop.wait(backoff)
                backoff = min(self.reconnect_max_s, backoff * 2)
                self.counters.reconnects += 1
                continue
            try:
                source.open()
            except Exception as exc:
                self._set_state(False, f"cannot open {source.name}: {exc}")
                self._stop.wait(backoff)
                backoff = min(self.reconnect_max_s, backoff * 2)
                self.counters.reconnects += 1
                continue
            frames_before = self.counters.frames
            reason = self._read_until_failure(source)
            source.close()
            if self.counters.frames > frames_before:
                backoff = first_pause  # frames flowed: this is a new outage, not the old one going on
            if self._stop.is_set():
                break
            self._set_state(False, reason)
            self._stop.wait(backoff)
            backoff = min(self.reconnect_max_s, backoff * 2)
            self.counters.reconnects += 1
            if self._online is None:
                continue
        log.info("camera %s stopped", self.name)

    def _read_until_failure(self, source: FrameSource) -> str:
        same_since = time.monotonic()
        while not self._stop.is_set():
            self._read_since = time.monotonic()
            try:
                frame = source.read()
            except Exception as exc:
                return f"{source.name} failed: {exc}"
            finally:
                self._read_since = None
            now = time.monotonic()
            if frame is None:
                return f"{source.name} stopped delivering frames"
            fingerprint = _fingerprint(frame)
            if fingerprint != self._last_print:
                self._last_print = fingerprint
                same_since = now
                self._last_new = now
            elif now - same_since > self.stale_after_s:
                return f"{source.name} is frozen (the same picture for {now - same_since:.0f} s)"
            else:
                continue  # a repeated picture is not a new frame
            with self._cond:
                self._frame = frame
                self._frame_t = time.time()
                self._seq += 1
                self.counters.frames += 1
                self._cond.notify_all()
            self._set_state(True, f"frames from {source.name}")
        return "stopped"

    def _watchdog(self) -> None:
        """A read that hangs (a dead RTSP peer) is reported even though the reading thread is stuck."""
        while not self._stop.wait(min(1.0, self.stale_after_s / 3)):
            # only a read that is stuck: a source that returns the same picture is the reading thread's to judge
            started = self._read_since
            now = time.monotonic()
            if self._online and started is not None and now - started > self.stale_after_s:
                self._set_state(False, f"no new frame for {now - self._last_new:.0f} s")


def _fingerprint(frame: Frame) -> bytes:
    """A tiny hash of the picture: sensor noise alone changes it, a frozen encoder does not."""
    tiny = cv2.resize(frame, (32, 18), interpolation=cv2.INTER_AREA)
    return hashlib.blake2b(tiny.tobytes(), digest_size=16).digest()
