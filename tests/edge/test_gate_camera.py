"""edge.gate.frames: the camera thread (newest frame only, offline/frozen/hung detection, reconnects) and its sources.

The fake sources here implement the :class:`FrameSource` protocol with frames
that carry their own sequence number; the real ones are OpenCV reading an
MJPEG stream from an HTTP server in this test and a video file written here.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from edge.gate.frames import Camera, FrameSource, FrameSourceError, OpenCvSource
from sc.config.schema import CameraConfig
from sc.waiting import wait_until

Frame = npt.NDArray[np.uint8]


def numbered(i: int) -> Frame:
    """A small frame that carries ``i`` in two pixels (so every frame has its own fingerprint)."""
    f = np.full((18, 32, 3), 60, dtype=np.uint8)
    f[0, 0, 0], f[0, 1, 0] = i % 256, (i // 256) % 256
    return f


def number_of(frame: Frame) -> int:
    return int(frame[0, 0, 0]) + 256 * int(frame[0, 1, 0])


class States:
    """Records ``on_state`` calls in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[bool, str]] = []
        self._lock = threading.Lock()

    def __call__(self, online: bool, reason: str) -> None:
        with self._lock:
            self.calls.append((online, reason))

    @property
    def flags(self) -> list[bool]:
        with self._lock:
            return [online for online, _ in self.calls]

    def reason(self, i: int) -> str:
        with self._lock:
            return self.calls[i][1]


class ScriptedSource:
    """A fake camera: frames from ``frames(i)`` (None ends the stream), one every ``period`` seconds."""

    def __init__(
        self,
        name: str,
        frames: Callable[[int], Frame | None],
        *,
        period: float = 0.005,
        fail_open: bool = False,
    ) -> None:
        self.name = name
        self._frames = frames
        self._period = period
        self._fail_open = fail_open
        self._i = 0
        self.opened = False
        self.closed = False

    def open(self) -> None:
        if self._fail_open:
            raise FrameSourceError("device busy")
        self.opened = True

    def read(self) -> Frame | None:
        time.sleep(self._period)
        frame = self._frames(self._i)
        self._i += 1
        return frame

    def close(self) -> None:
        self.closed = True


class Pauses(threading.Event):
    """A camera's stop event that records how long its reading thread pauses (between reconnects)."""

    def __init__(self, camera: Camera) -> None:
        super().__init__()
        self._reader = camera._thread.name
        self.taken: list[float | None] = []
        camera._stop = self

    def wait(self, timeout: float | None = None) -> bool:
        if threading.current_thread().name == self._reader:
            self.taken.append(timeout)
        return super().wait(timeout)


def record_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the ``time.sleep`` calls of this thread from now on (they still sleep)."""
    slept: list[float] = []
    me = threading.get_ident()
    real = time.sleep

    def sleep(s: float) -> None:
        if threading.get_ident() == me:
            slept.append(s)
        real(s)

    monkeypatch.setattr(time, "sleep", sleep)
    return slept


class Factory:
    """Hands the camera one source after another (the last one again when the list runs out)."""

    def __init__(self, sources: list[FrameSource]) -> None:
        self.sources = sources
        self.made = 0

    def __call__(self) -> FrameSource:
        source = self.sources[min(self.made, len(self.sources) - 1)]
        self.made += 1
        return source


# --------------------------------------------------------------------------- newest frame only


def test_a_slow_consumer_gets_only_newer_frames_and_the_rest_are_counted_dropped() -> None:
    source = ScriptedSource("fast", numbered, period=0.002)
    camera = Camera(lambda: source, stale_after_s=5.0)
    got: list[int] = []
    started = time.time()
    camera.start()
    try:
        for _ in range(15):
            item = camera.latest(timeout=30.0)
            assert item is not None, "no frame from a source that delivers one every 2 ms"
            frame, t = item
            assert started <= t <= time.time()  # a wall-clock capture time (time.time(), not monotonic)
            got.append(number_of(frame))
            time.sleep(0.03)  # a slow vision loop
    finally:
        camera.stop()
    assert got == sorted(set(got)), f"an older or repeated frame was handed out: {got}"
    assert camera.counters.dropped > 0
    last = camera.latest(timeout=0)  # anything published after the last take, before the stop
    if last is not None:
        got.append(number_of(last[0]))
    c = camera.counters
    assert c.frames == got[-1] + 1  # every frame the source gave was published (numbered from 0) ...
    assert c.frames == len(got) + c.dropped  # ... and each was either handed out or counted dropped
    assert c.dropped == sum(b - a - 1 for a, b in itertools.pairwise(got)) + got[0]
    assert camera.latest(timeout=0) is None  # nothing new: nothing handed out twice
    assert (c.offline_reports, c.reconnects) == (0, 0)


def test_latest_times_out_with_none_when_no_frame_comes() -> None:
    stop = threading.Event()

    def never(i: int) -> Frame | None:
        stop.wait(5)
        return None

    camera = Camera(lambda: ScriptedSource("silent", never, period=0), stale_after_s=30.0)
    camera.start()
    try:
        assert camera.latest(timeout=0.3) is None  # it comes back (with nothing) rather than waiting for ever
    finally:
        stop.set()
        camera.stop()


# --------------------------------------------------------------------------- offline and back


def test_a_source_that_ends_is_reported_offline_once_reopened_and_online_again() -> None:
    first = ScriptedSource("cam-a", lambda i: numbered(i) if i < 20 else None)
    second = ScriptedSource("cam-a", lambda i: numbered(1000 + i))
    factory = Factory([first, second])
    states = States()
    camera = Camera(factory, stale_after_s=5.0, reconnect_max_s=2.0, on_state=states)
    camera.start()
    try:
        assert wait_until(lambda: len(states.flags) >= 3, 10), states.calls
        time.sleep(0.2)  # nothing more is reported while frames flow
        assert states.flags == [True, False, True]
        assert states.reason(1) == "cam-a stopped delivering frames"
        assert states.reason(2) == "frames from cam-a"
        assert first.closed and second.opened
        item = camera.latest(timeout=2.0)
        assert item is not None and number_of(item[0]) >= 1000  # frames from the reopened source
    finally:
        camera.stop()
    assert camera.counters.offline_reports == 1
    assert camera.counters.reconnects == 1
    assert factory.made == 2
    assert camera.online


def test_the_reconnect_pause_starts_short_again_after_frames_flowed() -> None:
    """A link that drops now and then (each time after delivering frames) is reopened after the first,
    short pause every time: the growing pauses are for an outage that lasts, not for the camera's whole life."""
    states = States()
    camera = Camera(
        lambda: ScriptedSource("flaky", lambda i: numbered(i) if i < 5 else None),
        stale_after_s=5.0,
        reconnect_max_s=30.0,
        on_state=states,
    )
    pauses = Pauses(camera)
    camera.start()
    try:
        assert wait_until(lambda: camera.counters.reconnects >= 4, 60), f"4 reconnects expected: {states.calls}"
    finally:
        camera.stop()
    # each pause is the first, short one (growing, they would be 0.5, 1, 2, 4 s)
    assert pauses.taken[:4] == [0.5] * 4, pauses.taken
    assert states.flags[:6] == [True, False] * 3


def test_a_frozen_source_is_reported_offline_after_stale_after_s() -> None:
    states = States()
    stuck = numbered(7)
    source = ScriptedSource("frozen-cam", lambda i: numbered(i) if i < 7 else stuck.copy(), period=0.01)
    camera = Camera(Factory([source, ScriptedSource("frozen-cam", lambda i: stuck.copy())]),
                    stale_after_s=0.8, reconnect_max_s=30.0, on_state=states)  # fmt: skip
    camera.start()
    try:
        assert wait_until(lambda: camera.online, 30), "the camera never came online"
        assert wait_until(lambda: states.flags == [True, False], 30), states.calls
        # offline because the picture stayed the same for longer than stale_after_s (the reading thread's own
        # measure: this test does not time it, that would depend on the load)
        assert "frozen-cam is frozen (the same picture for" in states.reason(1)
        # reopened after 0.5 s, the encoder still shows the picture it froze on: not a new frame, still offline
        time.sleep(1.5)
        assert states.flags == [True, False], states.calls
    finally:
        camera.stop()
    assert camera.counters.frames == 8  # frames 0..7; the repeats of 7 are not new frames
    assert camera.counters.offline_reports == 1


@pytest.mark.parametrize("failures", [1, 3])
def test_a_source_that_cannot_be_opened_is_reported_offline_once_then_online(failures: int) -> None:
    states = States()
    sources: list[FrameSource] = [ScriptedSource("usb-cam", numbered, fail_open=True) for _ in range(failures)]
    sources.append(ScriptedSource("usb-cam", numbered))
    factory = Factory(sources)
    camera = Camera(factory, stale_after_s=5.0, reconnect_max_s=0.2, on_state=states)
    camera.start()
    try:
        assert wait_until(lambda: camera.online, 5), states.calls
        time.sleep(0.1)
    finally:
        camera.stop()
    assert states.flags == [False, True]
    assert states.reason(0) == "cannot open usb-cam: device busy"
    assert camera.counters.offline_reports == 1
    assert camera.counters.reconnects == failures
    assert factory.made == failures + 1


def test_a_source_that_cannot_even_be_built_is_reported_offline_and_retried() -> None:
    """An unknown synthetic scene or a bad URL raises in the factory: the camera thread must not die silently."""
    states = States()
    calls = itertools.count()

    def factory() -> FrameSource:
        if next(calls) < 2:
            raise ValueError("unknown scene 'nope'")
        return ScriptedSource("usb-cam", numbered)

    camera = Camera(factory, stale_after_s=5.0, reconnect_max_s=0.2, on_state=states, name="north")
    camera.start()
    try:
        assert wait_until(lambda: camera.online, 5), states.calls
    finally:
        camera.stop()
    assert states.flags == [False, True]
    assert states.reason(0) == "cannot open north's camera source: unknown scene 'nope'"
    assert camera.counters.reconnects == 2


def test_the_synthetic_source_refuses_an_unknown_scene_by_name() -> None:
    from edge.gate.frames import open_source

    with pytest.raises(ValueError, match="unknown scene 'nope'"):
        open_source(CameraConfig(source="synthetic:nope"))


def test_a_read_that_hangs_is_reported_offline_by_the_watchdog_while_it_is_stuck() -> None:
    release = threading.Event()
    in_read = threading.Event()

    def frames(i: int) -> Frame | None:
        if i == 10:  # a dead RTSP peer: the read blocks
            in_read.set()
            release.wait(20)
            in_read.clear()
        return numbered(i)

    states = States()
    camera = Camera(lambda: ScriptedSource("rtsp-cam", frames), stale_after_s=0.6, on_state=states)
    camera.start()
    try:
        assert wait_until(lambda: states.flags == [True], 5)
        assert in_read.wait(5)
        assert wait_until(lambda: states.flags == [True, False], 5), states.calls
        assert in_read.is_set()  # reported while the read is still stuck
        reason = states.reason(1)
        assert reason.startswith("no new frame for "), reason
        release.set()
        assert wait_until(lambda: states.flags == [True, False, True], 5), states.calls
    finally:
        release.set()
        camera.stop()
    assert camera.counters.offline_reports == 1
    assert camera.counters.reconnects == 0  # the same source went on: nothing was reopened


def test_a_state_callback_that_raises_does_not_stop_the_camera(caplog: pytest.LogCaptureFixture) -> None:
    def bad(online: bool, reason: str) -> None:
        raise RuntimeError("subscriber bug")

    camera = Camera(lambda: ScriptedSource("cam", numbered), on_state=bad)
    camera.start()
    try:
        assert camera.latest(timeout=2) is not None
        assert camera.latest(timeout=2) is not None
    finally:
        camera.stop()
    assert "state callback failed" in caplog.text


# --------------------------------------------------------------------------- a real MJPEG stream over HTTP


class MjpegServer:
    """``multipart/x-mixed-replace`` JPEG frames (a counter and a moving bar) at about 25 fps."""

    def __init__(self, port: int = 0) -> None:
        self.halt = threading.Event()
        self.served = 0
        halt = self.halt
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                i = 0
                while not halt.is_set():
                    img = np.full((120, 160, 3), 90, dtype=np.uint8)
                    x = (i * 7) % 140
                    img[30:90, x : x + 20] = (20, 200, 240)
                    cv2.putText(img, str(i), (5, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
                    ok, jpg = cv2.imencode(".jpg", img)
                    assert ok
                    data = jpg.tobytes()
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                    try:
                        self.wfile.write(head + data + b"\r\n")
                        self.wfile.flush()
                    except OSError:
                        return
                    owner.served += 1
                    i += 1
                    time.sleep(0.04)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """The camera's end of the network goes away: streams end and connections are refused."""
        self.halt.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def test_a_real_mjpeg_stream_goes_offline_when_the_server_stops_and_online_when_it_returns() -> None:
    server = MjpegServer()
    port = server.port
    url = f"http://127.0.0.1:{port}/stream"
    cfg = CameraConfig(source=url, stale_after_s=2.0, reconnect_max_s=0.5)
    states = States()
    camera = Camera(lambda: OpenCvSource(cfg), stale_after_s=2.0, reconnect_max_s=0.5, on_state=states, name="mjpeg")
    camera.start()
    try:
        assert wait_until(lambda: states.flags == [True], 15), states.calls
        assert states.reason(0) == f"frames from {url}"
        frames = []
        for _ in range(3):
            item = camera.latest(timeout=3.0)
            assert item is not None
            frames.append(item[0])
        assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)
        assert abs(float(frames[0].mean()) - float(frames[2].mean())) < 20  # the same scene ...
        assert not np.array_equal(frames[0], frames[2])  # ... moving

        server.stop()
        assert wait_until(lambda: states.flags == [True, False], 10), states.calls
        assert states.reason(1).startswith(url)
        time.sleep(1.2)  # some reopen attempts fail (connection refused) without a second offline report
        assert states.flags == [True, False]
        assert camera.counters.reconnects >= 2

        server = MjpegServer(port)  # the camera comes back at the same address
        assert wait_until(lambda: states.flags == [True, False, True], 15), states.calls
        item = camera.latest(timeout=3.0)
        assert item is not None and item[0].shape == (120, 160, 3)
    finally:
        camera.stop()
        server.stop()
    assert camera.counters.offline_reports == 1


def test_opening_a_stream_nobody_serves_fails_with_the_source_in_the_message() -> None:
    server = MjpegServer()
    port = server.port
    server.stop()
    source = OpenCvSource(CameraConfig(source=f"http://127.0.0.1:{port}/stream", stale_after_s=2.0))
    with pytest.raises(FrameSourceError, match=f"cannot open camera source http://127.0.0.1:{port}/stream"):
        source.open()  # refused at once: it does not hang (pytest's timeout would say so)
    assert source.read() is None  # never opened: no frames, no exception


# --------------------------------------------------------------------------- a video file


def write_video(path: Path, n: int, fps: float) -> list[int]:
    """An MJPG .avi of ``n`` flat grey frames (level 10 + 8 i, so each is recognisable after JPEG)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (160, 120))
    assert writer.isOpened()
    levels = [10 + 8 * i for i in range(n)]
    for level in levels:
        writer.write(np.full((120, 160, 3), level, dtype=np.uint8))
    writer.release()
    return levels


def read_all(source: OpenCvSource) -> list[Frame]:
    frames = []
    while (f := source.read()) is not None:
        frames.append(f)
        assert len(frames) < 1000
    return frames


def test_a_video_file_is_read_back_frame_by_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = tmp_path / "clip.avi"
    levels = write_video(clip, 30, 10.0)
    source = OpenCvSource(CameraConfig(source=f"file:{clip}"), pace=False)
    assert source.name == f"file:{clip}"
    slept = record_sleeps(monkeypatch)
    source.open()
    frames = read_all(source)
    assert slept == []  # not paced: as fast as it decodes (paced, it would sleep between the 30 frames at 10 fps)
    source.close()
    assert len(frames) == 30
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)
    assert [round(float(f.mean())) for f in frames] == pytest.approx(levels, abs=3)
    assert source.read() is None  # closed


def test_a_relative_video_path_is_found_next_to_the_config_and_paced_at_its_frame_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_video(tmp_path / "door.avi", 8, 20.0)
    source = OpenCvSource(CameraConfig(source="file:door.avi"), base_dir=tmp_path)  # pace: on for files
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)  # what the pacing asks for, not how long the machine took
    source.open()
    frames = read_all(source)
    source.close()
    assert len(frames) == 8
    # 8 frames at 20 fps, like a camera would deliver them: frame k is due k periods after the first, so (with the
    # sleeps not really sleeping here) each pause asks for up to one period more than the one before
    assert slept and slept == sorted(slept), slept
    assert all(0 < s <= (k + 1) / 20 + 1e-6 for k, s in enumerate(slept)) and len(slept) <= 8, slept


def test_a_missing_video_file_names_its_path(tmp_path: Path) -> None:
    source = OpenCvSource(CameraConfig(source="file:nowhere/missing.avi"), base_dir=tmp_path)
    with pytest.raises(FrameSourceError) as exc:
        source.open()
    assert str(tmp_path / "nowhere" / "missing.avi") in str(exc.value)
    absolute = tmp_path / "gone.avi"
    with pytest.raises(FrameSourceError, match=f"video file {absolute} does not exist"):
        OpenCvSource(CameraConfig(source=f"file:{absolute}")).open()


def test_a_camera_over_a_video_file_reports_the_end_of_the_file(tmp_path: Path) -> None:
    clip = tmp_path / "short.avi"
    write_video(clip, 10, 25.0)
    states = States()
    cfg = CameraConfig(source=f"file:{clip}")
    camera = Camera(lambda: OpenCvSource(cfg, pace=False), stale_after_s=5.0, reconnect_max_s=30.0, on_state=states)
    camera.start()
    try:
        assert wait_until(lambda: states.flags[:2] == [True, False], 5), states.calls
        assert states.reason(1) == f"file:{clip} stopped delivering frames"
    finally:
        camera.stop()
    assert camera.counters.frames >= 10


# --------------------------------------------------------------------------- the source string


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("usb:x", "usb camera source needs a device index, e.g. usb:0 (got 'usb:x')"),
        ("usb:", "needs a device index"),
        ("usb:-1", "needs a device index"),
        ("ftp://cam.local/stream", "unknown camera source 'ftp://cam.local/stream': start it with one of usb:"),
        ("/dev/video0", "unknown camera source '/dev/video0'"),
        ("rtmp://cam/live", "unknown camera source"),
        ("", "unknown camera source"),
    ],
)
def test_a_camera_source_with_an_unknown_scheme_is_refused_clearly(source: str, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        CameraConfig(source=source)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    "source",
    ["usb:0", "usb:12", "rtsp://cam/1", "rtsps://cam/1", "http://h/s", "https://h/s", "file:a.mp4", "synthetic:x"],
)
def test_known_camera_sources_are_accepted(source: str) -> None:
    assert CameraConfig(source=source).source == source
