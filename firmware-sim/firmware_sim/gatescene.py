"""Synthetic gate scenes with ground truth, rendered from real face photos.

The gate's vision loop (face entry, visitor QR passes, anti-tailgating) is
tested and benchmarked on these scenes: every frame comes with what is in it
(:class:`FrameTruth`), every scene with what the gate should conclude
(:class:`SceneTruth`).

Camera geometry
---------------

One camera (``size`` = 1280x720 by default, 25 fps) hangs above the door and
looks out along the entrance passage towards the street. The passage is a
flat floor between two walls; its far end is a bright opening onto the street
(``D_OPEN`` metres away). A person is placed by a lateral offset ``X`` (metres,
0 = the camera's axis) and a floor distance ``D`` (metres from the camera).
Their *perspective scale* is ``s = D_DOOR / D`` (1 at the door stop):

- feet (the bottom of the body box): ``x = W/2 + X * 0.45 H * s``,
  ``y = 0.30 H + 0.45 H * s`` (0.30 H is the horizon, where the floor's lines meet;
  the floor tiles of the background follow the same projection);
- the face box (what dlib's detector marks) is ``0.22 H * s**1.5`` tall while
  approaching (``H`` = frame height) and grows more slowly past the door;
- people are drawn big-headed near the camera, as a wide lens above a door
  sees them: the head is much nearer the camera than the feet.

A person walks in from the street (small, in the upper middle of the frame),
grows as they approach and STOPS at the door (``s = 1``): feet at
``y = 0.75 H``, face about 150-170 px tall (at 720p) and wholly in the frame,
for 1-1.5 s while the gate recognises them. If the door opens they walk on,
their feet cross the door line and they leave through the bottom of the frame
(passing under the camera).

The door line
-------------

``DOOR_LINE = ((0.05, 0.82), (0.95, 0.82))``: a horizontal segment ``a -> b``
in fractions of (width, height), image coordinates (x right, **y down**), at
``y = 0.82 H``. A person crosses *inward* ("in") when their feet go from above
the line (``y < 0.82 H``, outside, the street side) to below it (``y >= 0.82 H``,
inside), with the feet's x between ``a`` and ``b``; "out" is the reverse.

Sides are the sign of the 2-D cross product in image coordinates::

    cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)

``cross > 0`` is "right" (on screen, walking from ``a`` to ``b`` with y pointing
down, the lower part of the picture is on your right hand), ``cross < 0`` is
"left". For this line ``cross = 0.9 W * (py - 0.82 H)``: the inside (below the
line) is ``DOOR_INSIDE = "right"``. :func:`side_of_line` implements exactly this.
A crossing's time is the time of the first frame whose feet are on the new side.

Rendering
---------

A procedural passage (tiled floor, panelled walls, ceiling lights, a door
frame with its sill on the door line, the street beyond) is rendered once per
scene. People are a body (torso, arms, legs that swing while walking,
clothing details, a contact shadow) with a head cut from a real photo
(``firmware_sim.faces``): dlib finds the face, GrabCut cuts hair, face and
collar from the photo's background inside a loose ellipse, and an inner
ellipse over the face always stays, so the face itself is never cut. People
are drawn far to near; someone beyond the street opening shows only through
it. Per frame: exposure/gain and gamma (a tone curve, with a faint mains
flicker), Gaussian sensor noise (from a pre-drawn bank), motion blur on fast
movers, and a JPEG re-encode (quality 72-78) as a camera stream would do.
Lightings: ``day``, ``dusk`` (gain 0.45, more noise), ``night`` (gain 0.25,
heavy noise, grey like an IR camera) and ``backlight`` (blown-out street,
people underexposed at gain 0.5). Everything is deterministic from ``seed``
and any frame can be rendered alone (:meth:`GateScene.render`); a 720p frame
takes about 10 ms.

Ground truth
------------

:meth:`GateScene.frame_truths` (no rendering) gives, per frame, every person
in view (:class:`PersonTruth`: identity, role, face box where the photo's
face lands, whether that face is recognisable, body box, feet), the QR
symbol's box while a pass is presented and the held photo's/phone's box
during an attack. :attr:`GateScene.truth` (:class:`SceneTruth`) says what the
gate should conclude: who the gallery holds, whom to let in by face, the door
crossings (recomputable from the per-frame feet), tailgating, a stranger
loitering, an attack. :attr:`GateScene.sources` names the photo each live head
was cut from: enrol residents from another photo of them where there is one
(``obama`` has three).
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from firmware_sim.faces import FACES_DIR, FacePhoto, identities

__all__ = [
    "DOOR_INSIDE",
    "DOOR_LINE",
    "LIGHTINGS",
    "SCENES",
    "Crossing",
    "FrameTruth",
    "GateScene",
    "PersonTruth",
    "SceneTruth",
    "build_scene",
    "contact_sheet",
    "side_of_line",
    "write_video",
]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
Box = tuple[int, int, int, int]
Role = Literal["resident", "stranger", "visitor", "tailgater", "attacker"]
Direction = Literal["in", "out"]
Side = Literal["left", "right"]

#: The door line, fractions of (width, height): inward = feet from y < 0.82 H to y >= 0.82 H.
DOOR_LINE: tuple[tuple[float, float], tuple[float, float]] = ((0.05, 0.82), (0.95, 0.82))
#: The inside's side of ``DOOR_LINE`` (cross product > 0 in image coordinates, y down: see the module doc).
DOOR_INSIDE: Side = "right"

LIGHTINGS = ("day", "dusk", "night", "backlight")

SCENES: dict[str, str] = {
    "resident_approach": "a resident walks up, stops to be recognised, the door opens, they walk in",
    "stranger": "a stranger walks up, loiters at the door ~12 s looking around, then walks away",
    "tailgater": "a resident is let in and a stranger follows 1-1.5 s behind, face turned away, and crosses too",
    "two_residents": "two residents arrive one after the other; each stops, is recognised and walks in",
    "visitor_qr": "a visitor holds up a QR pass (a card) for ~2.5 s, then walks in",
    "photo_attack": "a stranger holds a printed photo of a resident in front of their face",
    "screen_attack": "a stranger holds a phone showing a resident's face in front of their own",
    "empty": "nobody: the passage, sensor noise and a faint lighting flicker",
}

DEFAULT_QR_TOKEN = "SC1.placeholder-visitor-pass.not-signed"

# --- the world: metres and the stylised projection --------------------------------------------------------------

D_DOOR = 2.5  # floor distance of the door stop (s = 1)
D_OPEN = 12.0  # the street opening at the far end of the passage
D_STREET = 13.2  # where people walk in from (behind the opening's edge)
D_GONE = 0.55  # past the camera: out of the frame
WALL_X = 1.9  # the passage's half width
POST_X = 1.62  # the door posts
WALK = 1.5  # m/s
STRIDE = 1.4  # metres per gait cycle (two steps)
HORIZON = 0.30  # fractions of the frame height
STOP_Y = 0.75
LINE_Y = DOOR_LINE[0][1]
FACE_AT_DOOR = 0.22  # face box height at the door stop, fraction of H
TOP_AT_DOOR = 0.035  # head top at the door stop, fraction of H
X_SCALE = 0.45  # px per metre at s = 1, fraction of H
CEILING = 0.95  # ceiling height above the horizon at s = 1, fraction of H

# head sprites: the crop around the face box, in face-box heights
_CROP_SIDE, _CROP_TOP, _CROP_BOTTOM = 1.0, 0.6, 0.35
_ELL_AX, _ELL_AY, _ELL_DY = 0.66, 0.82, -0.08  # ellipse semi-axes and centre offset from the face centre
_HEAD_TOP = _ELL_AY - _ELL_DY - 0.5  # 0.4 F: ellipse top above the face box top
_F_BASE = 220  # face height of the cached crops


# --- public truth --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonTruth:
    """One person in one frame, in full-frame pixels."""

    pid: int
    identity: str
    role: Role
    face_box: Box | None  # (left, top, right, bottom) of the real face, clipped; None when not visible at all
    face_visible: bool  # the whole face in the frame, frontal, >= 100 px tall, not covered
    body_box: Box  # head top to feet, clipped to the frame (and to the street opening far away)
    feet: tuple[float, float]  # bottom centre of the body, unclipped (may lie below the frame)


@dataclass(frozen=True)
class FrameTruth:
    index: int
    t: float
    persons: tuple[PersonTruth, ...]
    qr_box: Box | None  # the QR symbol (modules, without quiet zone) while it is presented
    attack_box: Box | None  # the held photo or phone screen


@dataclass(frozen=True)
class Crossing:
    t: float  # time of the first frame with the feet on the new side
    pid: int
    direction: Direction


@dataclass(frozen=True)
class SceneTruth:
    name: str
    lighting: str
    residents: tuple[str, ...]  # identities the gallery should hold
    expected_grants: tuple[str, ...]  # identities expected to be let in by face, in order
    crossings: tuple[Crossing, ...]
    expect_tailgating: bool
    expect_stranger: bool
    attack: bool
    qr_token: str | None


def side_of_line(
    point: tuple[float, float],
    line: tuple[tuple[float, float], tuple[float, float]] = DOOR_LINE,
    size: tuple[int, int] = (1280, 720),
) -> Side | None:
    """Which side of ``line`` (fractions of ``size``) a pixel ``point`` is on; None on the line itself.

    Image coordinates, y down: ``cross(b - a, p - a) > 0`` is "right", ``< 0`` is "left".
    """
    w, h = size
    (ax, ay), (bx, by) = (line[0][0] * w, line[0][1] * h), (line[1][0] * w, line[1][1] * h)
    cross = (bx - ax) * (point[1] - ay) - (by - ay) * (point[0] - ax)
    if cross > 0:
        return "right"
    if cross < 0:
        return "left"
    return None


# --- head sprites from the photos ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _HeadSource:
    """A face photo cut around its face: ``crop`` holds the face box ``face`` (F = ``_F_BASE`` px tall)."""

    crop: U8  # BGR
    alpha: F32  # the soft head ellipse, 0..1
    face: tuple[float, float, float, float]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    print_crop: U8  # head and shoulders for printed/screen attacks (BGR), face F_BASE tall
    print_face: tuple[float, float, float, float]


_PHOTO_LOCK = threading.Lock()  # dlib's detector is not thread-safe, and GrabCut reseeds OpenCV's RNG


@lru_cache(maxsize=1)
def _engine() -> object:
    from vision.faces import FaceEngine

    return FaceEngine()


@lru_cache(maxsize=32)
def _face_in_photo(path: str, face_index: int) -> tuple[float, float, float, float]:
    """The face box (left, top, right, bottom) dlib finds in a photo, the ``face_index``-th from the left."""
    from vision.faces import FaceEngine, load_rgb

    engine = _engine()
    assert isinstance(engine, FaceEngine)
    rgb = load_rgb(path)
    big = max(rgb.shape[:2])
    boxes = engine.detect(rgb, scale=0.5) if big > 1600 else []
    if len(boxes) <= face_index:
        boxes = engine.detect(rgb)
    if len(boxes) <= face_index:
        boxes = engine.detect(rgb, upsample=1)
    if len(boxes) <= face_index:
        raise ValueError(f"{path}: found {len(boxes)} faces, wanted face #{face_index}")
    boxes = sorted(boxes, key=lambda b: b.left)
    if face_index == 0 and len(boxes) > 1 and "t1" not in Path(path).name:
        boxes = sorted(boxes, key=lambda b: b.height, reverse=True)
    b = boxes[face_index]
    return float(b.left), float(b.top), float(b.right), float(b.bottom)


def _cut(img: U8, x0: float, y0: float, x1: float, y1: float, out_w: int, out_h: int) -> U8:
    """The region (x0, y0)-(x1, y1) of ``img`` resampled to ``out_w`` x ``out_h`` (edges replicated)."""
    sx, sy = (x1 - x0) / out_w, (y1 - y0) / out_h
    m = np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]], dtype=np.float64)
    flags = cv2.INTER_AREA if sx > 1.0 else cv2.INTER_CUBIC
    if sx > 1.6:  # downscale with area averaging first, then the exact affine cut
        f = 1.0 / sx
        small = np.asarray(cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        m = np.array([[sx * f, 0.0, (x0 + 0.5 * sx) * f - 0.5], [0.0, sy * f, (y0 + 0.5 * sy) * f - 0.5]])
        img, flags = small, cv2.INTER_LINEAR
    out = cv2.warpAffine(img, m, (out_w, out_h), flags=flags | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, dtype=np.uint8)


def _ellipse_alpha(w: int, h: int, cx: float, cy: float, ax: float, ay: float, feather: float) -> F32:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xx + 0.5 - cx) / ax) ** 2 + ((yy + 0.5 - cy) / ay) ** 2)
    return np.asarray(np.clip((1.0 - r) / feather + 0.5, 0.0, 1.0), dtype=np.float32)


def _head_mask(crop: U8, fcx: float, fcy: float) -> F32:
    """A soft head mask: GrabCut's hair/face/neck cut within a loose ellipse, never less than the face itself.

    GrabCut runs on a half-size copy (seeded: sure face in the middle, maybe-head around it, sure background
    outside a loose ellipse); the inner ellipse that always stays covers the face, so the detector's evidence
    (eyes, nose, mouth, jaw) is never cut away, whatever GrabCut decides about the hair.
    """
    h, w = crop.shape[:2]
    f = float(_F_BASE)
    ecy = fcy + _ELL_DY * f
    outer = _ellipse_alpha(w, h, fcx, ecy + 0.04 * f, (_ELL_AX + 0.06) * f, (_ELL_AY + 0.16) * f, 0.06)
    inner = _ellipse_alpha(w, h, fcx, fcy, 0.42 * f, 0.6 * f, 0.08)
    k = 0.5
    small = np.asarray(cv2.resize(crop, None, fx=k, fy=k, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    sh, sw = small.shape[:2]
    mask = np.full((sh, sw), cv2.GC_BGD, np.uint8)
    mask[_ellipse_alpha(sw, sh, fcx * k, (ecy + 0.04 * f) * k, 0.76 * f * k, 1.0 * f * k, 0.01) > 0.5] = cv2.GC_PR_BGD
    mask[_ellipse_alpha(sw, sh, fcx * k, ecy * k, _ELL_AX * f * k, _ELL_AY * f * k, 0.01) > 0.5] = cv2.GC_PR_FGD
    mask[_ellipse_alpha(sw, sh, fcx * k, fcy * k, 0.4 * f * k, 0.52 * f * k, 0.01) > 0.5] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(1)
    cv2.grabCut(small, mask, (0, 0, 1, 1), bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)  # the rect is unused with a mask
    cut = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8) * 255
    # keep the blob that holds the face (drop stray islands), smooth its outline
    n, labels = cv2.connectedComponents(cut)
    if n > 2:
        keep = labels[round(fcy * k), round(fcx * k)]
        cut = np.where(labels == keep, 255, 0).astype(np.uint8)
    r = max(3, round(0.07 * f * k)) | 1  # open away thin spikes (a flagpole, a curtain's fringe)
    cut = np.asarray(
        cv2.morphologyEx(cut, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (r, r))), np.uint8
    )
    n, labels = cv2.connectedComponents(cut)
    if n > 2:
        cut = np.where(labels == labels[round(fcy * k), round(fcx * k)], 255, 0).astype(np.uint8)
    soft = np.asarray(cv2.resize(cut, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32) / 255.0
    soft = np.asarray(cv2.GaussianBlur(soft, (0, 0), 0.012 * f), dtype=np.float32)
    return np.asarray(np.maximum(soft * outer, inner), dtype=np.float32)


def _head_source(path: str, face_index: int) -> _HeadSource:
    """The head cut from a photo (cached per process; computed once, under a lock)."""
    with _PHOTO_LOCK:
        return _head_source_cached(path, face_index)


@lru_cache(maxsize=32)
def _head_source_cached(path: str, face_index: int) -> _HeadSource:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: not an image")
    bgr = np.asarray(img, dtype=np.uint8)
    left, top, right, bottom = _face_in_photo(path, face_index)
    f_src = bottom - top
    cx = (left + right) / 2
    k = _F_BASE / f_src
    w, h = round(2 * _CROP_SIDE * _F_BASE), round((1 + _CROP_TOP + _CROP_BOTTOM) * _F_BASE)
    x0, y0 = cx - _CROP_SIDE * f_src, top - _CROP_TOP * f_src
    crop = _cut(bgr, x0, y0, x0 + w / k, y0 + h / k, w, h)
    fl, ft = (left - x0) * k, (top - y0) * k
    face = (fl, ft, fl + (right - left) * k, ft + _F_BASE)
    fcx, fcy = (face[0] + face[2]) / 2, (face[1] + face[3]) / 2
    alpha = _head_mask(crop, fcx, fcy)
    # fade out towards the crop's bottom edge (the collar), so it never ends in a straight cut
    rows = (np.arange(h, dtype=np.float32) + 0.5 - (face[3] + 0.12 * _F_BASE)) / (0.2 * _F_BASE)
    alpha *= np.clip(1.0 - rows, 0.0, 1.0)[:, None]
    # colours for the neck, hands and the back of the head
    fx0, fx1 = round(fcx - 0.2 * _F_BASE), round(fcx + 0.2 * _F_BASE)
    cheeks = crop[round(fcy + 0.05 * _F_BASE) : round(fcy + 0.25 * _F_BASE), fx0:fx1].reshape(-1, 3)
    skin = tuple(int(v) for v in np.median(cheeks, axis=0))
    ht = round(face[1] - 0.32 * _F_BASE)
    top_band = crop[max(0, ht) : max(1, ht + round(0.12 * _F_BASE)), fx0:fx1].reshape(-1, 3)
    hair = tuple(int(v) for v in np.median(top_band, axis=0) * 0.85)
    # head and shoulders for a printed photo or a phone screen
    pw, ph = round(1.9 * _F_BASE), round(2.5 * _F_BASE)
    px0, py0 = cx - 0.95 * f_src, top - 0.55 * f_src
    print_crop = _cut(bgr, px0, py0, px0 + pw / k, py0 + ph / k, pw, ph)
    pl, pt = (left - px0) * k, (top - py0) * k
    return _HeadSource(
        crop=crop,
        alpha=alpha,
        face=face,
        skin=(skin[0], skin[1], skin[2]),
        hair=(hair[0], hair[1], hair[2]),
        print_crop=print_crop,
        print_face=(pl, pt, pl + (right - left) * k, pt + _F_BASE),
    )


@dataclass(frozen=True)
class _HeadLayer:
    fg: U8
    alpha: F32  # 0..1, H x W
    face: tuple[float, float, float, float]  # in layer pixels
    anchor: tuple[float, float]  # the face box's top-left at zero yaw/roll: where the layer is placed from
    face_w0: float  # that face box's width


@lru_cache(maxsize=1024)
def _head_layer(
    path: str, face_index: int, fpx: int, yaw_q: int, roll_q: int, cap: bool, back: bool, gain_q: int
) -> _HeadLayer:
    """The head sprite for a face ``fpx`` px tall: turned by ``yaw_q``/20 rad, rolled ``roll_q`` degrees."""
    src = _head_source(path, face_index)
    k = fpx / _F_BASE
    h0, w0 = src.crop.shape[:2]
    w, h = max(4, round(w0 * k)), max(4, round(h0 * k))
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    fg = np.asarray(cv2.resize(src.crop, (w, h), interpolation=interp), dtype=np.uint8)
    alpha = np.asarray(cv2.resize(src.alpha, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    sx, sy = w / w0, h / h0
    fl, ft, fr, fb = src.face[0] * sx, src.face[1] * sy, src.face[2] * sx, src.face[3] * sy
    anchor, anchor_w = (fl, ft), fr - fl
    fcx, fcy = (fl + fr) / 2, (ft + fb) / 2
    ecy = fcy + _ELL_DY * fpx
    hair = np.array(src.hair, dtype=np.float32)
    yaw = yaw_q / 20.0
    if back:  # the back of the head: hair colour, soft shading, fine streaks
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        shade = 1.0 - 0.35 * np.clip((yy - ecy) / (_ELL_AY * fpx), 0, 1) - 0.15 * np.abs((xx - fcx) / (_ELL_AX * fpx))
        streaks = np.random.default_rng(fpx).normal(0, 1, (h, w)).astype(np.float32)
        streaks = np.asarray(cv2.GaussianBlur(streaks, (0, 0), sigmaX=0.6, sigmaY=max(1.0, 0.04 * fpx)), np.float32)
        shade = shade * (1.0 + 0.25 * streaks)
        fg = np.clip(hair[None, None, :] * shade[:, :, None] + 6, 0, 255).astype(np.uint8)
        alpha = _ellipse_alpha(w, h, fcx, ecy, _ELL_AX * fpx, _ELL_AY * fpx, 0.06)
    elif yaw != 0:  # turned: the head narrows, the face slides to the side it turns to, an ear shows
        c = max(0.35, math.cos(yaw))
        fw = max(2, round(w * c))
        squashed = np.asarray(cv2.resize(fg, (fw, h), interpolation=cv2.INTER_AREA), dtype=np.float32)
        sq_a = np.asarray(cv2.resize(alpha, (fw, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
        xs = (np.arange(fw, dtype=np.float32) - fw / 2) / (fw / 2)
        squashed *= (1.0 - 0.25 * np.clip(-np.sign(yaw) * xs, 0, 1) ** 2)[None, :, None]  # the far side in shade
        shift = math.sin(yaw) * 0.18 * fpx
        ox = round(fcx * (1 - c) + shift)
        fg = np.zeros((h, w, 3), np.uint8)
        alpha = np.zeros((h, w), np.float32)
        x0, x1 = max(0, ox), min(w, ox + fw)
        fg[:, x0:x1] = np.clip(squashed[:, x0 - ox : x1 - ox], 0, 255).astype(np.uint8)
        alpha[:, x0:x1] = sq_a[:, x0 - ox : x1 - ox]
        fl, fr = fcx + (fl - fcx) * c + shift, fcx + (fr - fcx) * c + shift
        ear_x = fcx + shift - math.copysign(0.56 * fpx * c, yaw)
        ear = (round(ear_x * 16), round((fcy - 0.02 * fpx) * 16))
        ear_axes = (round(0.07 * fpx * 16 * min(1.0, abs(yaw) / 0.7)), round(0.16 * fpx * 16))
        ear_c = tuple(int(v * 0.82) for v in src.skin)
        if abs(yaw) > 0.3:
            cv2.ellipse(fg, ear, ear_axes, 0, 0, 360, ear_c, -1, cv2.LINE_AA, 4)
            ear_m = np.zeros((h, w), np.uint8)
            cv2.ellipse(ear_m, ear, ear_axes, 0, 0, 360, 255, -1, cv2.LINE_AA, 4)
            alpha = np.maximum(alpha, ear_m.astype(np.float32) / 255)
    else:
        fg = fg.copy()
    if cap:  # a baseball cap pulled down to the eyebrows: a dome and a brim
        cap_mask = np.zeros((h, w), np.uint8)
        top = ecy - _ELL_AY * fpx
        brim_y = ft + 0.22 * fpx
        dome_c = (round(fcx * 16), round(brim_y * 16))
        dome_ax = (round(0.62 * fpx * 16), round((brim_y - top + 0.02 * fpx) * 16))
        brim_c = (round((fcx + math.sin(yaw) * 0.3 * fpx) * 16), round(brim_y * 16))
        brim_ax = (round(0.55 * fpx * 16), round(0.13 * fpx * 16))
        for img_, dome, brim in ((fg, (48, 40, 38), (30, 26, 25)), (cap_mask, 255, 255)):
            cv2.ellipse(img_, dome_c, dome_ax, 0, 180, 360, dome, -1, cv2.LINE_AA, 4)
            cv2.ellipse(img_, brim_c, brim_ax, 0, 0, 180, brim, -1, cv2.LINE_AA, 4)
        seam = (round(fcx * 16), round(top * 16)), (round(fcx * 16), round(brim_y * 16))
        cv2.line(fg, seam[0], seam[1], (70, 62, 60), max(1, round(0.02 * fpx)), cv2.LINE_AA, 4)
        alpha = np.maximum(alpha, cap_mask.astype(np.float32) / 255)
    roll = float(roll_q)
    face = (fl, ft, fr, fb)
    if roll != 0:
        m = cv2.getRotationMatrix2D((fcx, ecy), -roll, 1.0)
        fg = np.asarray(cv2.warpAffine(fg, m, (w, h), flags=cv2.INTER_LINEAR), dtype=np.uint8)
        alpha = np.asarray(cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR), dtype=np.float32)
        corners = np.array([[fl, ft, 1], [fr, ft, 1], [fr, fb, 1], [fl, fb, 1]], dtype=np.float64) @ m.T
        # the detector's box of a rolled face stays about the face's size: shrink the rotated corners' hull
        (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
        cxr, cyr = (x0 + x1) / 2, (y0 + y1) / 2
        half_w, half_h = (fr - fl) / 2, (fb - ft) / 2
        face = (cxr - half_w, cyr - half_h, cxr + half_w, cyr + half_h)
    if gain_q != 100:
        fg = np.asarray(cv2.convertScaleAbs(fg, alpha=gain_q / 100.0), dtype=np.uint8)
    fg.flags.writeable = False
    alpha = np.ascontiguousarray(alpha)
    alpha.flags.writeable = False
    return _HeadLayer(fg=fg, alpha=alpha, face=face, anchor=anchor, face_w0=anchor_w)


# --- the passage ---------------------------------------------------------------------------------------------------


def _smooth_lines(v: F32, period: float, width: float, fw: F32) -> F32:
    """1 on thin lines at multiples of ``period`` (antialiased by the pixel footprint ``fw``), else 0."""
    d = np.abs(v / period - np.round(v / period)) * period
    return np.asarray(np.clip((width + fw - d) / np.maximum(fw, 1e-6), 0.0, 1.0), dtype=np.float32)


@lru_cache(maxsize=16)
def _background(w: int, h: int, lighting: str, seed: int) -> U8:
    """The passage as the camera sees it (float work, once per size/lighting/seed)."""
    rng = np.random.default_rng([seed, 7])
    cx, yh = w / 2, HORIZON * h
    g, kx, ceil_k = (STOP_Y - HORIZON) * h, X_SCALE * h, CEILING * h
    s_open = D_DOOR / D_OPEN
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy += 0.5
    xx += 0.5
    acc = np.zeros((h, w, 3), np.float32)
    eps = 1e-3
    # floor: y > horizon, s = (y - yh) / g
    s_floor = np.maximum((yy - yh) / g, eps)
    x_floor = (xx - cx) / (kx * s_floor)
    d_floor = D_DOOR / s_floor
    # walls: the ray hits X = +-WALL_X at s_wall
    s_wall = np.maximum(np.abs(xx - cx) / (kx * WALL_X), eps)
    v_wall = (yy - yh) / s_wall  # height on the wall in px at s = 1 (down positive)
    # ceiling: y < horizon
    s_ceil = np.maximum((yh - yy) / ceil_k, eps)
    x_ceil = (xx - cx) / (kx * s_ceil)
    is_floor = (yy > yh) & (np.abs(x_floor) <= WALL_X) & (s_floor >= s_open)
    is_ceil = (yy < yh) & (np.abs(x_ceil) <= WALL_X) & (s_ceil >= s_open)
    is_wall = ~is_floor & ~is_ceil & (s_wall >= s_open) & (v_wall <= g) & (v_wall >= -ceil_k)
    street = ~(is_floor | is_ceil | is_wall)

    # floor tiles 0.6 m, grout lines, a little per-tile variation
    tile = 0.6
    ti = np.floor(x_floor / tile).astype(np.int32) * 7919 + np.floor(d_floor / tile).astype(np.int32) * 104729
    tvar = ((ti % 97) / 97.0 - 0.5).astype(np.float32) * 14
    fw_d = (D_DOOR / (s_floor**2 * g)).astype(np.float32)  # metres of D per pixel row
    fw_x = (1.0 / (kx * s_floor)).astype(np.float32)
    grout = np.maximum(_smooth_lines(d_floor, tile, 0.012, fw_d), _smooth_lines(x_floor, tile, 0.012, fw_x))
    floor = (150 + tvar) * (1 - 0.45 * grout)
    floor_c = np.stack([floor * 0.95, floor * 0.97, floor * 1.0], axis=-1)
    # a darker mat in front of the door and the sill on the door line
    # walls: a dado panel below 1 m, painted plaster above, seams every 1.5 m
    d_wall = D_DOOR / s_wall
    z_wall = (g - v_wall) / g * 0.9  # metres above the floor (camera height about 0.9 m in this projection)
    fw_wall = (D_DOOR / (s_wall**2 * kx * WALL_X)).astype(np.float32)
    seams = _smooth_lines(d_wall, 1.5, 0.01, fw_wall)
    dado = z_wall < 1.0
    plaster = 185 + rng.normal(0, 1, size=(h, w)).astype(np.float32) * 3
    wall_l = np.where(dado, 120.0, plaster) * (1 - 0.3 * seams)
    rail = np.abs(z_wall - 1.0) < 0.03
    wall_l = np.where(rail, 90.0, wall_l)
    shade = np.clip(0.75 + 0.25 * s_wall / 1.5, 0.7, 1.0)
    wall_c = np.stack([wall_l * 0.86 * shade, wall_l * 0.93 * shade, wall_l * 1.0 * shade], axis=-1)
    wall_c = np.where(dado[..., None], wall_c * np.array([1.05, 0.95, 0.82], np.float32), wall_c)
    # ceiling with light panels every 3 m
    d_ceil = D_DOOR / s_ceil
    panel = (np.abs(x_ceil) < 0.45) & ((d_ceil % 3.0) < 0.8)
    ceil_c = np.where(panel[..., None], np.float32(250), np.float32(120))
    ceil_c = np.broadcast_to(ceil_c, (h, w, 3)) * np.array([0.95, 0.97, 1.0], np.float32)
    # the street: sky, far buildings, road
    street_c = np.zeros((h, w, 3), np.float32)
    y_road = yh + g * (D_DOOR / 40.0)
    sky = np.clip((yh - yy) / (ceil_k * s_open), 0, 1)
    street_c[...] = np.stack([235 - 10 * sky, 225 - 5 * sky, 205 + 20 * sky], axis=-1)
    bx = 0.0
    x_lo, x_hi = cx - kx * WALL_X * s_open * 1.3, cx + kx * WALL_X * s_open * 1.3
    while x_lo + bx < x_hi:
        bw = float(rng.uniform(0.08, 0.22) * kx * WALL_X * s_open)
        bh = float(rng.uniform(0.25, 0.7) * ceil_k * s_open)
        col = rng.uniform(140, 200, size=3).astype(np.float32)
        sel = (xx >= x_lo + bx) & (xx < x_lo + bx + bw) & (yy > y_road - bh) & (yy <= y_road)
        street_c[sel] = col
        bx += bw
    street_c[yy > y_road] = np.array([150, 150, 155], np.float32)

    acc[is_floor] = floor_c[is_floor]
    acc[is_wall] = wall_c[is_wall]
    acc[is_ceil] = ceil_c[is_ceil]
    acc[street] = street_c[street]
    if lighting == "backlight":
        acc[~street] *= 0.8
        glow = np.zeros((h, w), np.float32)
        glow[street] = 1.0
        glow = np.asarray(cv2.GaussianBlur(glow, (0, 0), sigmaX=h * 0.04), dtype=np.float32)
        acc = acc + glow[..., None] * 140
        acc[street] = 255
    elif lighting == "dusk":
        acc[street] *= np.array([0.55, 0.6, 0.85], np.float32)
        acc[~street] *= np.array([0.9, 1.0, 1.12], np.float32)  # warm lamps inside
    elif lighting == "night":
        acc[street] *= 0.25
        acc[~street] *= 1.1
    img = np.clip(acc, 0, 255).astype(np.uint8)

    # the door frame: a metal sill on the door line, posts at the frame's edges, a reader on the right post
    (ax, ay), (bx_, _) = (DOOR_LINE[0][0] * w, DOOR_LINE[0][1] * h), (DOOR_LINE[1][0] * w, 0.0)
    sill_h = max(3, round(0.012 * h))
    cv2.rectangle(img, (round(ax), round(ay - sill_h)), (round(bx_), round(ay)), (165, 170, 175), -1, cv2.LINE_AA)
    cv2.line(img, (round(ax), round(ay)), (round(bx_), round(ay)), (70, 70, 75), max(1, sill_h // 3), cv2.LINE_AA)
    s_line = (LINE_Y - HORIZON) / (STOP_Y - HORIZON)
    post_w = round(0.035 * h)
    for sign in (-1, 1):
        px = cx + sign * kx * POST_X * s_line
        x0, x1 = round(px - post_w / 2), round(px + post_w / 2)
        cv2.rectangle(img, (x0, 0), (x1, round(ay + sill_h)), (95, 100, 108), -1, cv2.LINE_AA)
        cv2.line(img, (x0 + 3, 0), (x0 + 3, round(ay)), (150, 155, 165), 2, cv2.LINE_AA)
        if sign == 1:
            ry = round(0.38 * h)
            cv2.rectangle(img, (x0 - post_w // 2, ry), (x1 - 4, ry + round(0.09 * h)), (40, 40, 45), -1, cv2.LINE_AA)
            cv2.rectangle(img, (x0 - post_w // 3, ry + 6), (x1 - 8, ry + round(0.05 * h)), (120, 90, 60), -1)
    img = np.asarray(cv2.GaussianBlur(img, (0, 0), sigmaX=0.6), dtype=np.uint8)
    img.flags.writeable = False
    return img


# --- actors and their scripts --------------------------------------------------------------------------------------

_TOPS = [
    ((70, 40, 30), "suit"),  # navy (BGR)
    ((60, 60, 62), "suit"),  # charcoal
    ((40, 40, 150), "jacket"),  # red
    ((80, 120, 70), "hoodie"),  # green
    ((120, 160, 190), "coat"),  # beige
    ((140, 130, 120), "hoodie"),  # grey-blue
    ((35, 35, 35), "jacket"),  # black
    ((150, 110, 60), "jacket"),  # blue
]
_BOTTOMS = [(70, 50, 40), (35, 35, 38), (110, 140, 160), (90, 90, 95), (100, 70, 50)]


@dataclass(frozen=True)
class _Style:
    top: tuple[int, int, int]
    kind: str
    bottom: tuple[int, int, int]
    shoes: tuple[int, int, int]
    height: float  # 0.96 .. 1.04


@dataclass
class _Prop:
    kind: Literal["qr", "photo", "screen"]
    up: float  # starts raising
    down: float  # starts lowering
    ramp: float = 0.4
    image: U8 | None = None  # built at the door size
    inner: tuple[float, float, float, float] = (0, 0, 0, 0)  # QR symbol / screen / photo area in ``image``
    face_px: float = 0.0  # the face size the image was built for


@dataclass
class _Actor:
    pid: int
    identity: str
    role: Role
    photo: FacePhoto
    keys: list[tuple[float, float, float]]  # (t, X, D), linear in between
    style: _Style
    look: Callable[[float], tuple[float, float]] | None = None  # t -> (yaw rad, roll deg)
    turned: float = 0.0  # a constant yaw (rad): the face turned away
    cap: bool = False
    prop: _Prop | None = None
    dist: list[float] = field(default_factory=list)  # path length at each key

    def __post_init__(self) -> None:
        acc = [0.0]
        for (_, x0, d0), (_, x1, d1) in zip(self.keys, self.keys[1:], strict=False):
            acc.append(acc[-1] + math.hypot(x1 - x0, d1 - d0))
        self.dist = acc

    @property
    def t0(self) -> float:
        return self.keys[0][0]

    @property
    def t1(self) -> float:
        return self.keys[-1][0]


class _Path:
    """A script of walks and stops, built in order."""

    def __init__(self, t: float, x: float, d: float) -> None:
        self.keys: list[tuple[float, float, float]] = [(t, x, d)]

    @property
    def t(self) -> float:
        return self.keys[-1][0]

    def walk(self, x: float, d: float, speed: float = WALK) -> _Path:
        t, x0, d0 = self.keys[-1]
        self.keys.append((t + math.hypot(x - x0, d - d0) / speed, x, d))
        return self

    def stand(self, seconds: float) -> _Path:
        t, x, d = self.keys[-1]
        self.keys.append((t + seconds, x, d))
        return self


@dataclass(frozen=True)
class _Pose:
    """Where one actor is at one time, and how they are drawn (full-frame pixels)."""

    actor: _Actor
    t: float
    x_m: float
    d_m: float
    s: float
    feet: tuple[float, float]
    fpx: float  # face box height
    face_cx: float
    face_top: float
    walking: bool
    phase: float
    speed_px: float  # image speed of the feet, px per frame
    away: bool
    yaw: float
    roll: float
    prop_level: float  # 0 down .. 1 presented
    clip: Box | None  # far away: only the street opening shows them

    @property
    def chin(self) -> float:
        return self.face_top + self.fpx * (0.5 + _ELL_AY + _ELL_DY)

    @property
    def head_top(self) -> float:
        return self.face_top - _HEAD_TOP * self.fpx

    @property
    def shoulder_y(self) -> float:
        return self.chin - 0.15 * self.fpx

    @property
    def body_len(self) -> float:
        return max(2.0, self.feet[1] - self.shoulder_y)

    @property
    def height_px(self) -> float:
        return self.feet[1] - self.head_top

    @property
    def shoulder_w(self) -> float:  # half width
        return 0.62 * self.fpx + 0.075 * self.height_px


class _Geometry:
    """The stylised projection (see the module doc), for one frame size."""

    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.cx, self.yh = w / 2, HORIZON * h
        self.g = (STOP_Y - HORIZON) * h
        self.kx = X_SCALE * h
        self.open_box: Box = self._open_box()

    def _open_box(self) -> Box:
        s = D_DOOR / D_OPEN
        x0 = self.cx - self.kx * WALL_X * s
        x1 = self.cx + self.kx * WALL_X * s
        return (round(x0), max(0, round(self.yh - CEILING * self.h * s)), round(x1), round(self.yh + self.g * s))

    def feet(self, x_m: float, s: float) -> tuple[float, float]:
        return self.cx + x_m * self.kx * s, self.yh + self.g * s

    def face_and_top(self, s: float, height: float) -> tuple[float, float]:
        """Face box height and head top (px) for a person of relative ``height`` at scale ``s``."""
        f_door = FACE_AT_DOOR * self.h * height
        p_door = (STOP_Y - TOP_AT_DOOR) * self.h * height
        fy = self.yh + self.g * s
        if s <= 1.0:
            return f_door * s**1.5, fy - p_door * s
        top_door = STOP_Y * self.h - p_door
        return f_door * s**0.35, top_door + 0.75 * (fy - STOP_Y * self.h)


def _interp_keys(actor: _Actor, t: float) -> tuple[float, float, float, int]:
    keys = actor.keys
    for i in range(len(keys) - 1):
        ta, xa, da = keys[i]
        tb, xb, db = keys[i + 1]
        if t <= tb:
            u = 0.0 if tb <= ta else (t - ta) / (tb - ta)
            return xa + (xb - xa) * u, da + (db - da) * u, actor.dist[i] + (actor.dist[i + 1] - actor.dist[i]) * u, i
    return keys[-1][1], keys[-1][2], actor.dist[-1], len(keys) - 2


def _pose(actor: _Actor, t: float, geo: _Geometry, fps: float) -> _Pose | None:
    if t < actor.t0 or t > actor.t1:
        return None
    x_m, d_m, dist, seg = _interp_keys(actor, t)
    ta, xa, da = actor.keys[seg]
    tb, xb, db = actor.keys[seg + 1]
    walking = tb > ta and (xa != xb or da != db)
    # facing: away when the last real walk went up the passage (D growing)
    away = False
    for i in range(seg, -1, -1):
        d0, d1 = actor.keys[i][2], actor.keys[i + 1][2]
        if abs(d1 - d0) > 0.3:  # a shuffle on the spot does not turn anyone round
            away = d1 > d0
            break
    phase = 2 * math.pi * dist / STRIDE
    sway = 0.025 * math.sin(phase / 2) if walking else 0.0
    s = D_DOOR / d_m
    feet = geo.feet(x_m + sway, s)
    fpx, top = geo.face_and_top(s, actor.style.height)
    if walking:
        top -= 0.01 * (feet[1] - top) * abs(math.sin(phase))  # a slight bob
    dt = 1.0 / fps
    x2, d2, _, _ = _interp_keys(actor, min(actor.t1, t + dt))
    f2 = geo.feet(x2, D_DOOR / d2)
    speed_px = math.hypot(f2[0] - feet[0], f2[1] - feet[1])
    yaw, roll = actor.turned, 0.0
    if actor.look is not None:
        dyaw, roll = actor.look(t)
        yaw += dyaw
    level = 0.0
    if actor.prop is not None:
        p = actor.prop
        level = min(1.0, max(0.0, (t - p.up) / p.ramp)) * min(1.0, max(0.0, 1 - (t - p.down) / p.ramp))
    clip = geo.open_box if d_m > D_OPEN else None
    return _Pose(
        actor=actor,
        t=t,
        x_m=x_m,
        d_m=d_m,
        s=s,
        feet=feet,
        fpx=fpx,
        face_cx=feet[0],
        face_top=top + _HEAD_TOP * fpx,
        walking=walking,
        phase=phase,
        speed_px=speed_px,
        away=away,
        yaw=yaw,
        roll=roll,
        prop_level=level,
        clip=clip,
    )


# --- props: QR card, printed photo, phone screen -------------------------------------------------------------------


def _qr_card(token: str, face_px: float) -> tuple[U8, tuple[float, float, float, float]]:
    """A white card with the token's QR code; returns it and the symbol's box in it."""
    import segno

    qr = segno.make(token, error="m")
    mat = np.array([list(row) for row in qr.matrix], dtype=np.uint8)
    n = mat.shape[0]
    # about 210 px at the door (720p), never under 3.4 px per module, 160-260 px wide
    target = float(np.clip(210.0 * face_px / 158.0, 160.0, 260.0))
    ppm = max(3.4, target / n)
    side = n * ppm
    quiet = 3.5 * ppm
    card = side + 2 * quiet
    big = 8
    sym = np.where(np.kron(mat, np.ones((big, big), np.uint8)) > 0, 20, 250).astype(np.uint8)
    sym_px = max(8, round(side))
    sym_small = np.asarray(cv2.resize(sym, (sym_px, sym_px), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    size = round(card)
    img = np.full((size, size, 3), 246, np.uint8)
    q = round(quiet)
    img[q : q + sym_px, q : q + sym_px] = sym_small[..., None]
    return img, (float(q), float(q), float(q + sym_px), float(q + sym_px))


def _printed_photo(src: _HeadSource, face_px: float) -> tuple[U8, tuple[float, float, float, float]]:
    """The photo printed on paper (white border, lower contrast, warm shift); its face box in it."""
    k = face_px / _F_BASE
    ph, pw = src.print_crop.shape[:2]
    w, h = max(8, round(pw * k)), max(8, round(ph * k))
    photo = np.asarray(cv2.resize(src.print_crop, (w, h), interpolation=cv2.INTER_AREA), dtype=np.float32)
    photo = 38 + photo * 0.72  # ink on paper: no deep blacks, duller whites
    photo *= np.array([0.88, 0.98, 1.04], np.float32)  # warm/yellowish print
    border = round(0.07 * w)
    img = np.full((h + 2 * border, w + 2 * border, 3), (228, 236, 240), np.float32)
    img[border : border + h, border : border + w] = photo
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]].astype(np.float32)
    img *= (0.93 + 0.07 * (xx / img.shape[1]) * (1 - yy / img.shape[0]))[..., None]  # paper sheen
    out = np.asarray(cv2.GaussianBlur(np.clip(img, 0, 255).astype(np.uint8), (0, 0), 0.8), dtype=np.uint8)
    f = src.print_face
    return out, (border + f[0] * k, border + f[1] * k, border + f[2] * k, border + f[3] * k)


def _phone_screen(src: _HeadSource, face_px: float) -> tuple[U8, tuple[float, float, float, float]]:
    """A phone (dark bezel) showing the face: brighter, bluish, faint moire and scan lines."""
    k = face_px / _F_BASE
    f = src.print_face
    fcx = (f[0] + f[2]) / 2
    # the screen shows a tighter crop than the print: the face and a little around it
    x0, x1 = fcx - 0.8 * _F_BASE, fcx + 0.8 * _F_BASE
    y0, y1 = f[1] - 0.5 * _F_BASE, f[1] + 1.75 * _F_BASE
    sw, sh = max(8, round((x1 - x0) * k)), max(8, round((y1 - y0) * k))
    scr = _cut(src.print_crop, x0, y0, x1, y1, sw, sh).astype(np.float32)
    scr = 20 + scr * 1.0
    scr *= np.array([1.12, 1.0, 0.88], np.float32)  # bluish (BGR)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    scr += 7 * np.sin(xx * 0.9 + yy * 0.35)[..., None]  # moire
    scr *= (1 - 0.06 * (np.floor(yy) % 3 == 0))[..., None]  # scan lines
    scr += 25 * np.clip(1 - np.abs((xx / sw + yy / sh) - 0.6) * 5, 0, 1)[..., None]  # glare stripe
    bez = max(3, round(0.06 * sw))
    img = np.full((sh + 2 * bez + round(0.1 * sh), sw + 2 * bez, 3), 22, np.uint8)
    top = round(0.05 * sh) + bez
    img[top : top + sh, bez : bez + sw] = np.clip(scr, 0, 255).astype(np.uint8)
    cv2.circle(img, (img.shape[1] // 2, top // 2), max(1, bez // 3), (60, 60, 60), -1, cv2.LINE_AA)
    return img, (
        bez + (f[0] - x0) * k,
        top + (f[1] - y0) * k,
        bez + (f[2] - x0) * k,
        top + (f[3] - y0) * k,
    )


def _quad(cx: float, cy: float, w: float, h: float, yaw: float, pitch: float, roll: float) -> npt.NDArray[np.float64]:
    """A w x h rectangle centred at (cx, cy), turned by yaw/pitch (rad, mild perspective) and rolled (rad)."""
    pts = np.array([[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]], np.float64)
    cy_, sy_ = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    ry = np.array([[cy_, 0, sy_], [0, 1, 0], [-sy_, 0, cy_]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    p = pts @ (ry @ rx).T
    fp = 2.5 * max(w, h)
    xy = p[:, :2] * (fp / (fp + p[:, 2:3]))
    cr, sr = math.cos(roll), math.sin(roll)
    xy = xy @ np.array([[cr, sr], [-sr, cr]])
    return np.asarray(xy + np.array([cx, cy]), dtype=np.float64)


# --- the scene -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Light:
    gain: float
    gamma: float
    noise: float
    person_gain: float
    grey: bool


_LIGHT = {
    "day": _Light(1.0, 1.0, 2.2, 1.0, False),
    "dusk": _Light(0.45, 0.9, 4.5, 1.0, False),
    "night": _Light(0.25, 0.8, 8.0, 1.0, True),
    "backlight": _Light(1.0, 1.0, 3.0, 0.5, False),
}


def _intersect(a: Box, b: Box) -> Box | None:
    box = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return box if box[2] > box[0] and box[3] > box[1] else None


def _area(b: Box) -> int:
    return max(0, b[2] - b[0]) * max(0, b[3] - b[1])


@dataclass(frozen=True)
class _Expect:
    residents: tuple[str, ...]
    grants: tuple[str, ...]
    tailgating: bool
    stranger: bool
    attack: bool


class GateScene:
    """A scripted scene: frames rendered on demand, with per-frame and per-scene truth."""

    def __init__(
        self,
        name: str,
        *,
        lighting: str,
        seed: int,
        size: tuple[int, int],
        fps: float,
        duration: float,
        actors: list[_Actor],
        expect: _Expect,
        qr_token: str | None,
        print_photo: FacePhoto | None,
    ) -> None:
        self.name = name
        self.lighting = lighting
        self.seed = seed
        self.fps = fps
        self.size = size
        self.n_frames = max(1, math.ceil(duration * fps))
        self._geo = _Geometry(*size)
        self._actors = actors
        self._light = _LIGHT[lighting]
        self.qr_token = qr_token
        #: identity -> the photo its live head is cut from (enrol residents from another photo where there is one)
        self.sources: dict[str, FacePhoto] = {a.identity: a.photo for a in actors}
        #: the photo shown by a photo/screen attack
        self.print_source = print_photo
        rng = np.random.default_rng([seed, 1])
        self._flicker_phase = float(rng.uniform(0, 2 * math.pi))
        self._prop_jitter = rng.uniform(0, 2 * math.pi, size=6)
        self._noise: tuple[U8, U8] | None = None
        self._lit: dict[int, U8] = {}
        self._truths: list[FrameTruth] | None = None
        self._build_props()
        self.truth = SceneTruth(
            name=name,
            lighting=lighting,
            residents=expect.residents,
            expected_grants=expect.grants,
            crossings=self._crossings(),
            expect_tailgating=expect.tailgating,
            expect_stranger=expect.stranger,
            attack=expect.attack,
            qr_token=qr_token,
        )

    # -- truth --

    def _poses(self, index: int) -> list[_Pose]:
        t = index / self.fps
        poses = [p for a in self._actors if (p := _pose(a, t, self._geo, self.fps)) is not None]
        return sorted(poses, key=lambda p: p.s)

    def _crossings(self) -> tuple[Crossing, ...]:
        w, h = self.size
        line_y = LINE_Y * h
        x_lo, x_hi = DOOR_LINE[0][0] * w, DOOR_LINE[1][0] * w
        last: dict[int, float] = {}
        out: list[Crossing] = []
        for i in range(self.n_frames):
            for p in self._poses(i):
                pid, (fx, fy) = p.actor.pid, p.feet
                prev = last.get(pid)
                if prev is not None and x_lo <= fx <= x_hi:
                    if prev < line_y <= fy:
                        out.append(Crossing(round(i / self.fps, 6), pid, "in"))
                    elif fy < line_y <= prev:
                        out.append(Crossing(round(i / self.fps, 6), pid, "out"))
                last[pid] = fy
        return tuple(out)

    def frame_truths(self) -> list[FrameTruth]:
        """The truth of every frame, without rendering."""
        if self._truths is None:
            self._truths = [self._frame_truth(i, self._poses(i)) for i in range(self.n_frames)]
        return list(self._truths)

    def _frame_truth(self, index: int, poses: list[_Pose]) -> FrameTruth:
        w, h = self.size
        frame_box: Box = (0, 0, w, h)
        persons: list[PersonTruth] = []
        qr_box: Box | None = None
        attack_box: Box | None = None
        body_boxes: list[tuple[float, Box]] = []
        prop_boxes: list[tuple[float, Box]] = []
        for p in poses:
            body = self._body_box(p)
            vis = _intersect(body, p.clip if p.clip is not None else frame_box)
            if vis is not None:
                vis = _intersect(vis, frame_box)
            body_boxes.append((p.s, body))
            prop = self._prop_geometry(p)
            if prop is not None:
                quad, inner_quad, kind = prop
                pb = _quad_box(quad, w, h)
                if pb is not None:
                    prop_boxes.append((p.s, pb))
                if kind == "qr" and p.prop_level >= 1.0:
                    qb = _quad_box(inner_quad, w, h)
                    if qb is not None and _quad_box(inner_quad, 10**6, 10**6) == qb:  # wholly in the frame
                        qr_box = qb
                elif kind in ("photo", "screen") and p.prop_level > 0.0 and pb is not None:
                    attack_box = pb
            if vis is None:
                continue
            face_box, visible = self._face_truth(p, frame_box)
            persons.append(
                PersonTruth(
                    pid=p.actor.pid,
                    identity=p.actor.identity,
                    role=p.actor.role,
                    face_box=face_box,
                    face_visible=visible,
                    body_box=vis,
                    feet=(round(p.feet[0], 3), round(p.feet[1], 3)),
                )
            )
        # occlusion: a face covered by someone nearer, or by a held card/photo, is not visible
        out: list[PersonTruth] = []
        by_pid = {p.actor.pid: p for p in poses}
        for pt in persons:
            if pt.face_box is not None and pt.face_visible:
                s_me = by_pid[pt.pid].s
                fa = _area(pt.face_box)
                covered = 0
                for s, box in [*body_boxes, *prop_boxes]:
                    if s > s_me:
                        inter = _intersect(box, pt.face_box)
                        covered = max(covered, _area(inter) if inter is not None else 0)
                own = self._own_prop_cover(by_pid[pt.pid], pt.face_box)
                if max(covered, own) > 0.1 * fa:
                    pt = PersonTruth(pt.pid, pt.identity, pt.role, pt.face_box, False, pt.body_box, pt.feet)
            out.append(pt)
        return FrameTruth(index, round(index / self.fps, 6), tuple(out), qr_box, attack_box)

    def _own_prop_cover(self, p: _Pose, face: Box) -> int:
        prop = self._prop_geometry(p)
        if prop is None:
            return 0
        box = _quad_box(prop[0], 10**6, 10**6)
        inter = _intersect(box, face) if box is not None else None
        return _area(inter) if inter is not None else 0

    def _face_truth(self, p: _Pose, frame_box: Box) -> tuple[Box | None, bool]:
        if p.away:
            return None, False
        layer, ox, oy = self._head(p)
        fl, ft, fr, fb = layer.face
        full = (round(ox + fl), round(oy + ft), round(ox + fr), round(oy + fb))
        if p.clip is not None:
            return None, False
        clipped = _intersect(full, frame_box)
        if clipped is None:
            return None, False
        frontal = abs(p.yaw) < 0.26 and abs(p.roll) <= 10 and not p.actor.cap
        inside = clipped == full
        covered = p.actor.prop is not None and p.actor.prop.kind != "qr" and p.prop_level > 0
        if covered:
            return None, False
        return clipped, frontal and inside and (fb - ft) >= 100

    def _body_box(self, p: _Pose) -> Box:
        sw = p.shoulder_w
        half = max(sw, _ELL_AX * p.fpx)
        return (
            math.floor(p.feet[0] - half),
            math.floor(p.head_top),
            math.ceil(p.feet[0] + half),
            math.ceil(p.feet[1] + 0.04 * p.body_len),
        )

    # -- rendering --

    def frames(self) -> Iterator[tuple[U8, FrameTruth]]:
        """Every frame (BGR uint8, H x W x 3) with its truth, rendered lazily and deterministically."""
        for i in range(self.n_frames):
            yield self.render(i)

    def render(self, index: int) -> tuple[U8, FrameTruth]:
        """Frame ``index`` alone (the same bytes as :meth:`frames` yields for it)."""
        if not 0 <= index < self.n_frames:
            raise IndexError(f"frame {index} of {self.n_frames}")
        w, h = self.size
        poses = self._poses(index)
        t = index / self.fps
        rng = np.random.default_rng([self.seed, index, 3])
        light = self._light
        # exposure, gamma and a faint mains flicker: one tone curve, applied to the (cached) lit background
        # and to each person's layers before they are blended in, instead of to the whole frame
        flicker = 1.0 + 0.012 * math.sin(2 * math.pi * 0.7 * t + self._flicker_phase) + 0.004 * rng.standard_normal()
        gain_q = round(light.gain * flicker / _GAIN_STEP)
        tone = _Tone(_lut(gain_q * _GAIN_STEP, light.gamma), light.grey)
        frame = self._lit_background(gain_q, tone).copy()
        for p in poses:
            self._draw_person(frame, p, t, tone)
        pos, neg = self._noise_bank()
        oy, ox = (int(v) for v in rng.integers(0, 32, size=2))
        frame = np.asarray(cv2.add(frame, pos[oy : oy + h, ox : ox + w]), dtype=np.uint8)
        oy, ox = (int(v) for v in rng.integers(0, 32, size=2))
        frame = np.asarray(cv2.subtract(frame, neg[oy : oy + h, ox : ox + w]), dtype=np.uint8)
        quality = int(rng.integers(72, 79))
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        frame = np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), dtype=np.uint8)
        truth = self._truths[index] if self._truths is not None else self._frame_truth(index, poses)
        return frame, truth

    def _lit_background(self, gain_q: int, tone: _Tone) -> U8:
        lit = self._lit.get(gain_q)
        if lit is None:
            lit = tone.apply(_background(self.size[0], self.size[1], self.lighting, self.seed))
            if len(self._lit) >= 12:
                self._lit.pop(next(iter(self._lit)))
            self._lit[gain_q] = lit
        return lit

    def _noise_bank(self) -> tuple[U8, U8]:
        if self._noise is None:
            w, h = self.size
            rng = np.random.default_rng([self.seed, 2])
            n = rng.standard_normal((h + 32, w + 32, 3), dtype=np.float32) * self._light.noise
            self._noise = (np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8))
        return self._noise

    def _head(self, p: _Pose) -> tuple[_HeadLayer, float, float]:
        """The head layer and where its top-left corner goes in the frame."""
        yaw_q = round(p.yaw * 20)
        layer = _head_layer(
            str(p.actor.photo.path),
            p.actor.photo.face_index,
            max(4, round(p.fpx)),
            yaw_q,
            round(p.roll),
            p.actor.cap,
            p.away,
            round(self._light.person_gain * 100),
        )
        ax, ay = layer.anchor  # the frontal face box's top-left: its centre goes to (face_cx, face_top)
        return layer, p.face_cx - layer.face_w0 / 2 - ax, p.face_top - ay

    def _draw_person(self, frame: U8, p: _Pose, t: float, tone: _Tone) -> None:
        if p.clip is not None:
            x0, y0, x1, y1 = p.clip
            canvas = frame[y0:y1, x0:x1]
            off = (float(x0), float(y0))
        else:
            canvas, off = frame, (0.0, 0.0)
        # motion blur (half-frame shutter) along the mostly vertical movement of someone walking fast
        blur = min(15, max(3, round(p.speed_px * 0.35)) | 1) if p.speed_px > 9 and p.clip is None else 1
        prop = self._prop_geometry(p)
        hands: tuple[tuple[float, float], tuple[float, float]] | None = None
        if prop is not None:
            q = prop[0]  # corners: top-left, top-right, bottom-right, bottom-left
            grip = 0.62
            left = q[0] + grip * (q[3] - q[0])
            right = q[1] + grip * (q[2] - q[1])
            hands = ((float(left[0]), float(left[1])), (float(right[0]), float(right[1])))
        skin = self._skin(p)
        gain = self._light.person_gain
        _draw_body(canvas, off, p, gain, skin, tone, hands, blur)
        layer, ox, oy = self._head(p)
        fg, alpha = tone.apply(layer.fg), layer.alpha
        if blur > 1:
            fg = np.asarray(cv2.blur(fg, (1, blur)), dtype=np.uint8)
            alpha = np.asarray(cv2.blur(alpha, (1, blur)), dtype=np.float32)
        _blend(canvas, fg, alpha, ox - off[0], oy - off[1])
        if prop is not None and p.actor.prop is not None and p.actor.prop.image is not None:
            _warp_onto(canvas, p.actor.prop.image, prop[0] - np.array(off), gain, tone)
        if hands is not None:
            _draw_hands(canvas, hands, off, p, skin, gain, tone)

    def _skin(self, p: _Pose) -> tuple[int, int, int]:
        return _head_source(str(p.actor.photo.path), p.actor.photo.face_index).skin

    # -- props --

    def _build_props(self) -> None:
        f_door = FACE_AT_DOOR * self.size[1]
        for a in self._actors:
            if a.prop is None:
                continue
            if a.prop.kind == "qr":
                img, inner = _qr_card(self.qr_token or DEFAULT_QR_TOKEN, f_door)
            else:
                assert self.print_source is not None
                src = _head_source(str(self.print_source.path), self.print_source.face_index)
                if a.prop.kind == "photo":
                    img, inner = _printed_photo(src, f_door * a.style.height)
                else:  # a phone's face is a little smaller than life, held close
                    img, inner = _phone_screen(src, 0.85 * f_door * a.style.height)
            a.prop.image, a.prop.inner, a.prop.face_px = img, inner, f_door * a.style.height

    def _prop_geometry(self, p: _Pose) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], str] | None:
        """The held prop's corners in the frame and its inner area's corners (QR symbol / printed face)."""
        prop = p.actor.prop
        if prop is None or prop.image is None or p.prop_level <= 0.0 or p.away:
            return None
        ih, iw = prop.image.shape[:2]
        k = p.fpx / prop.face_px  # the prop scales with the person
        w, h = iw * k, ih * k
        # a rigid object in a hand: it tilts slowly and trembles a little, it never deforms
        j, t = self._prop_jitter, p.t
        tremor_x = 0.012 * p.fpx * math.sin(2 * math.pi * 1.3 * t + j[0])
        tremor_y = 0.01 * p.fpx * math.sin(2 * math.pi * 0.9 * t + j[1])
        lvl = p.prop_level
        body_len = p.body_len
        if prop.kind == "qr":
            cx = p.face_cx + 0.05 * p.fpx + tremor_x
            cy = p.shoulder_y + 0.45 * body_len + (1 - lvl) * 0.6 * body_len + tremor_y
            yaw = 0.12 * math.sin(j[2]) + 0.06 * math.sin(2 * math.pi * t / 3.1 + j[3])
            pitch = 0.12 + 0.04 * math.sin(2 * math.pi * t / 2.3 + j[4])
            roll = 0.05 * math.sin(j[5]) + 0.03 * math.sin(2 * math.pi * t / 2.7)
        else:
            # the printed face goes where the real face is: in front of it
            fx = (prop.inner[0] + prop.inner[2]) / 2 * k
            fy = (prop.inner[1] + prop.inner[3]) / 2 * k
            cx = p.face_cx + (w / 2 - fx) + tremor_x
            cy = p.face_top + 0.62 * p.fpx + (h / 2 - fy) + (1 - lvl) * 0.8 * body_len + tremor_y
            yaw = 0.1 * math.sin(j[3]) + 0.08 * math.sin(2 * math.pi * t / 3.3 + j[4])
            pitch = 0.06 * math.sin(2 * math.pi * t / 2.9 + j[5])
            roll = 0.04 * math.sin(j[5]) + 0.03 * math.sin(2 * math.pi * t / 4.1 + j[2])
        quad = _quad(cx, cy, w, h, yaw, pitch, roll)
        m = cv2.getPerspectiveTransform(np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32), quad.astype(np.float32))
        x0, y0, x1, y1 = (v * k for v in prop.inner)
        inner = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
        inner_q = cv2.perspectiveTransform(inner[None].astype(np.float32), m)[0].astype(np.float64)
        return quad, inner_q, prop.kind


def _quad_box(quad: npt.NDArray[np.float64], w: int, h: int) -> Box | None:
    x0, y0 = np.floor(quad.min(axis=0))
    x1, y1 = np.ceil(quad.max(axis=0))
    return _intersect((int(x0), int(y0), int(x1), int(y1)), (0, 0, w, h))


@lru_cache(maxsize=256)
def _lut_cached(gain_q: int, gamma_q: int) -> U8:
    x = np.arange(256, dtype=np.float64) / 255.0
    y = np.clip(x * gain_q / 1000.0, 0, 1) ** (gamma_q / 100.0)
    out = np.clip(np.round(y * 255), 0, 255).astype(np.uint8)
    out.flags.writeable = False
    return out


def _lut(gain: float, gamma: float) -> U8:
    return _lut_cached(round(gain * 1000), round(gamma * 100))


_GAIN_STEP = 0.004  # exposure quantum: the lit backgrounds are cached per step


@dataclass(frozen=True)
class _Tone:
    """The camera's tone curve for one frame (and, at night, its grey IR look)."""

    lut: U8
    grey: bool

    def apply(self, img: U8) -> U8:
        out = np.asarray(cv2.LUT(img, self.lut), dtype=np.uint8)
        if self.grey:
            grey = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
            out = np.asarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
        return out

    def colour(self, c: tuple[int, int, int]) -> tuple[int, int, int]:
        b, g, r = (int(self.lut[v]) for v in c)
        if self.grey:
            y = round(0.114 * b + 0.587 * g + 0.299 * r)
            return (y, y, y)
        return (b, g, r)


def _blend(canvas: U8, fg: U8, alpha: F32, ox: float, oy: float) -> None:
    """Alpha-blend ``fg`` onto ``canvas`` with its top-left at (ox, oy) (integer-rounded), clipped."""
    x0, y0 = round(ox), round(oy)
    h, w = fg.shape[:2]
    ch, cw = canvas.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(cw, x0 + w), min(ch, y0 + h)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    sub_fg = fg[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    a = alpha[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    roi = canvas[cy0:cy1, cx0:cx1]
    a = np.ascontiguousarray(a)
    blended = cv2.blendLinear(sub_fg, np.ascontiguousarray(roi), a, np.ascontiguousarray(1.0 - a))
    canvas[cy0:cy1, cx0:cx1] = blended


def _warp_onto(canvas: U8, img: U8, quad: npt.NDArray[np.float64], gain: float, tone: _Tone) -> None:
    h, w = img.shape[:2]
    ch, cw = canvas.shape[:2]
    x0, y0 = (max(0, math.floor(float(v))) for v in quad.min(axis=0))
    x1, y1 = (math.ceil(float(v)) for v in quad.max(axis=0))
    x1, y1 = min(cw, x1), min(ch, y1)
    if x1 <= x0 or y1 <= y0:
        return
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    m = cv2.getPerspectiveTransform(src, (quad - np.array([x0, y0])).astype(np.float32))
    roi = np.ascontiguousarray(canvas[y0:y1, x0:x1])
    sprite = tone.apply(img if gain == 1.0 else np.asarray(cv2.convertScaleAbs(img, alpha=gain), dtype=np.uint8))
    out = cv2.warpPerspective(
        sprite, m, (x1 - x0, y1 - y0), dst=roi, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT
    )
    canvas[y0:y1, x0:x1] = out


def _pts(points: Sequence[tuple[float, float]], off: tuple[float, float]) -> npt.NDArray[np.int32]:
    return np.array([[round((x - off[0]) * 16), round((y - off[1]) * 16)] for x, y in points], dtype=np.int32)


def _col(c: tuple[int, int, int], gain: float, k: float = 1.0) -> tuple[int, int, int]:
    return (min(255, round(c[0] * gain * k)), min(255, round(c[1] * gain * k)), min(255, round(c[2] * gain * k)))


def _draw_hands(
    canvas: U8,
    hands: tuple[tuple[float, float], tuple[float, float]],
    off: tuple[float, float],
    p: _Pose,
    skin: tuple[int, int, int],
    gain: float,
    tone: _Tone,
) -> None:
    """Hands gripping the prop's edges: fingers over the front."""
    r = max(1.5, 0.075 * p.fpx + 0.012 * p.height_px)
    for side, (x, y) in zip((-1, 1), hands, strict=True):
        c = _pts([(x - side * 0.25 * r, y)], off)[0]
        axes = (max(8, round(0.75 * r * 16)), max(8, round(1.15 * r * 16)))
        cv2.ellipse(
            canvas,
            (int(c[0]), int(c[1])),
            axes,
            side * 12,
            0,
            360,
            tone.colour(_col(skin, gain, 0.88)),
            -1,
            cv2.LINE_AA,
            4,
        )
        for i in range(3):  # finger creases
            fy = y - 0.55 * r + i * 0.45 * r
            a, b = _pts([(x - side * 0.75 * r, fy), (x + side * 0.1 * r, fy)], off)
            cv2.line(
                canvas,
                (int(a[0]), int(a[1])),
                (int(b[0]), int(b[1])),
                tone.colour(_col(skin, gain, 0.62)),
                1,
                cv2.LINE_AA,
                4,
            )


def _poly(
    img: U8,
    mask: U8,
    pts: Sequence[tuple[float, float]],
    off: tuple[float, float],
    colour: tuple[int, int, int],
    m: int = 255,
) -> None:
    q = [_pts(pts, off)]
    cv2.fillPoly(img, q, colour, cv2.LINE_AA, 4)
    cv2.fillPoly(mask, q, m, cv2.LINE_AA, 4)


def _limb(
    img: U8,
    mask: U8,
    a: tuple[float, float],
    b: tuple[float, float],
    wa: float,
    wb: float,
    off: tuple[float, float],
    colour: tuple[int, int, int],
) -> None:
    """A tapered limb from ``a`` (half width ``wa``) to ``b`` (``wb``) with rounded ends."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    n = math.hypot(dx, dy) or 1.0
    nx, ny = -dy / n, dx / n
    quad = [
        (a[0] + nx * wa, a[1] + ny * wa),
        (b[0] + nx * wb, b[1] + ny * wb),
        (b[0] - nx * wb, b[1] - ny * wb),
        (a[0] - nx * wa, a[1] - ny * wa),
    ]
    _poly(img, mask, quad, off, colour)
    for (x, y), r in ((a, wa), (b, wb)):
        c = _pts([(x, y)], off)[0]
        rr = max(8, round(r * 16))
        cv2.circle(img, (int(c[0]), int(c[1])), rr, colour, -1, cv2.LINE_AA, 4)
        cv2.circle(mask, (int(c[0]), int(c[1])), rr, 255, -1, cv2.LINE_AA, 4)


def _ellipse(
    img: U8,
    mask: U8,
    c: tuple[float, float],
    axes: tuple[float, float],
    off: tuple[float, float],
    colour: tuple[int, int, int],
    m: int = 255,
    start: float = 0.0,
    end: float = 360.0,
) -> None:
    p = _pts([c], off)[0]
    ax = (max(8, round(axes[0] * 16)), max(8, round(axes[1] * 16)))
    cv2.ellipse(img, (int(p[0]), int(p[1])), ax, 0, start, end, colour, -1, cv2.LINE_AA, 4)
    cv2.ellipse(mask, (int(p[0]), int(p[1])), ax, 0, start, end, m, -1, cv2.LINE_AA, 4)


@lru_cache(maxsize=16)
def _fabric(seed: int) -> F32:
    """A 256 x 256 tileable cloth texture around 1.0 (weave noise and soft creases)."""
    rng = np.random.default_rng([seed, 11])
    fine = rng.normal(0, 1, (256, 256)).astype(np.float32)
    coarse = np.asarray(cv2.resize(rng.normal(0, 1, (16, 16)).astype(np.float32), (256, 256)), dtype=np.float32)
    tex = 1.0 + 0.035 * fine + 0.05 * coarse
    tex.flags.writeable = False
    return tex


def _draw_body(
    canvas: U8,
    off: tuple[float, float],
    p: _Pose,
    gain: float,
    skin: tuple[int, int, int],
    tone: _Tone,
    hands: tuple[tuple[float, float], tuple[float, float]] | None = None,
    blur: int = 1,
) -> None:
    """Shadow, legs, torso, arms and neck: drawn on a local layer, shaded, textured, then blended onto ``canvas``."""
    st = p.actor.style
    fx, fy = p.feet
    sw = p.shoulder_w
    sy = p.shoulder_y
    body_len = p.body_len
    hip_y = sy + 0.42 * body_len
    swing = math.sin(p.phase) if p.walking else 0.0
    # the layer's extent in canvas pixels
    x0 = math.floor(fx - 1.35 * sw - off[0]) - 2
    x1 = math.ceil(fx + 1.35 * sw - off[0]) + 2
    y0 = math.floor(min(sy, p.chin - 0.35 * p.fpx) - 0.1 * sw - off[1]) - 2 - blur
    y1 = math.ceil(fy + 0.12 * body_len - off[1]) + 2 + blur
    ch, cw = canvas.shape[:2]
    if x1 <= 0 or y1 <= 0 or x0 >= cw or y0 >= ch or x1 - x0 < 2 or y1 - y0 < 2:
        return
    lo = (off[0] + x0, off[1] + y0)  # frame coordinates of the layer's origin
    lw, lh = x1 - x0, y1 - y0
    img = np.zeros((lh, lw, 3), np.uint8)
    mask = np.zeros((lh, lw), np.uint8)
    top_c, bottom_c, shoe_c = st.top, st.bottom, st.shoes
    dark_top = _col(st.top, 1.0, 0.72)
    dark_bottom = _col(st.bottom, 1.0, 0.75)
    skin_c = _col(skin, 1.0, 0.92)
    # a soft contact shadow on the floor
    for k, m in ((1.0, 40), (0.8, 70), (0.6, 100)):
        _ellipse(img, mask, (fx, fy), (1.05 * sw * k, 0.07 * body_len * k + 1), lo, (0, 0, 0), m)
    # legs: the forward foot sits lower in the image (nearer the camera)
    for side in (1, -1) if swing >= 0 else (-1, 1):
        lift = side * swing * 0.06 * body_len
        hip = (fx + side * 0.34 * sw, hip_y)
        knee = (fx + side * 0.3 * sw, hip_y + 0.5 * (fy - hip_y) + 0.5 * lift)
        ankle = (fx + side * 0.27 * sw, fy - 0.035 * body_len + lift)
        colour = bottom_c if side > 0 else dark_bottom
        _limb(img, mask, hip, knee, 0.3 * sw, 0.24 * sw, lo, colour)
        _limb(img, mask, knee, ankle, 0.24 * sw, 0.17 * sw, lo, colour)
        _ellipse(img, mask, (ankle[0], ankle[1] + 0.025 * body_len), (0.21 * sw, 0.05 * body_len + 1), lo, shoe_c)
    holding = hands is not None
    arm_pts: list[tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = []
    for side in (-1, 1):
        shoulder = (fx + side * 0.8 * sw, sy + 0.18 * sw)
        if hands is not None:
            hand = hands[0] if side < 0 else hands[1]
            elbow = (fx + side * 1.05 * sw, max(hand[1], sy + 0.2 * sw) + 0.08 * body_len)
        else:
            arm_swing = -side * swing * 0.05 * body_len
            elbow = (fx + side * 0.98 * sw, sy + 0.24 * body_len + 0.4 * arm_swing)
            hand = (fx + side * 0.9 * sw, sy + 0.46 * body_len + arm_swing)
        arm_pts.append((shoulder, elbow, hand))
    # torso: sloping shoulders, chest, waist
    torso = [
        (fx - 0.42 * sw, sy - 0.1 * sw),
        (fx - 0.78 * sw, sy + 0.0 * sw),
        (fx - 0.93 * sw, sy + 0.16 * sw),
        (fx - 0.92 * sw, sy + 0.5 * sw),
        (fx - 0.76 * sw, sy + 0.3 * body_len),
        (fx - 0.72 * sw, hip_y - 0.04 * body_len),
        (fx - 0.76 * sw, hip_y + 0.04 * body_len),
        (fx + 0.76 * sw, hip_y + 0.04 * body_len),
        (fx + 0.72 * sw, hip_y - 0.04 * body_len),
        (fx + 0.76 * sw, sy + 0.3 * body_len),
        (fx + 0.92 * sw, sy + 0.5 * sw),
        (fx + 0.93 * sw, sy + 0.16 * sw),
        (fx + 0.78 * sw, sy + 0.0 * sw),
        (fx + 0.42 * sw, sy - 0.1 * sw),
    ]
    if holding:
        _poly(img, mask, torso, lo, top_c)
    for shoulder, elbow, hand in arm_pts:
        _limb(img, mask, shoulder, elbow, 0.19 * sw, 0.15 * sw, lo, _col(st.top, 1.0, 0.82))
        _limb(img, mask, elbow, hand, 0.15 * sw, 0.11 * sw, lo, _col(st.top, 1.0, 0.82))
        if not holding:
            _ellipse(img, mask, (hand[0], hand[1] + 0.1 * sw), (0.12 * sw, 0.15 * sw), lo, skin_c)
    if not holding:
        _poly(img, mask, torso, lo, top_c)
    lwid = max(1, round(0.025 * sw))
    if not p.away:
        neck_w = 0.2 * p.fpx
        neck = [
            (fx - neck_w, p.chin - 0.35 * p.fpx),
            (fx + neck_w, p.chin - 0.35 * p.fpx),
            (fx + 0.8 * neck_w, sy + 0.1 * sw),
            (fx - 0.8 * neck_w, sy + 0.1 * sw),
        ]
        _poly(img, mask, neck, lo, _col(skin, 1.0, 0.8))
        if st.kind == "suit":
            shirt = [(fx - 0.3 * sw, sy - 0.08 * sw), (fx + 0.3 * sw, sy - 0.08 * sw), (fx, sy + 0.3 * body_len)]
            _poly(img, mask, shirt, lo, (232, 232, 232))
            tie = [
                (fx - 0.06 * sw, sy),
                (fx + 0.06 * sw, sy),
                (fx + 0.09 * sw, sy + 0.24 * body_len),
                (fx, sy + 0.29 * body_len),
                (fx - 0.09 * sw, sy + 0.24 * body_len),
            ]
            _poly(img, mask, tie, lo, (60, 40, 140))
            for side in (-1, 1):
                lapel = [
                    (fx + side * 0.3 * sw, sy - 0.08 * sw),
                    (fx + side * 0.5 * sw, sy + 0.05 * body_len),
                    (fx + side * 0.02 * sw, sy + 0.3 * body_len),
                ]
                pts = _pts(lapel, lo)
                cv2.polylines(img, [pts], False, dark_top, lwid, cv2.LINE_AA, 4)
        elif st.kind == "hoodie":
            _ellipse(img, mask, (fx, sy + 0.02 * sw), (0.5 * sw, 0.14 * sw), lo, dark_top, 255, 0, 180)
            pocket = [
                (fx - 0.45 * sw, hip_y - 0.13 * body_len),
                (fx + 0.45 * sw, hip_y - 0.13 * body_len),
                (fx + 0.52 * sw, hip_y),
                (fx - 0.52 * sw, hip_y),
            ]
            cv2.polylines(img, [_pts(pocket, lo)], True, dark_top, lwid, cv2.LINE_AA, 4)
        else:  # jacket or coat: a zip / button line, a collar
            za, zb = _pts([(fx, sy + 0.02 * body_len), (fx, hip_y)], lo)
            cv2.line(img, (int(za[0]), int(za[1])), (int(zb[0]), int(zb[1])), dark_top, lwid + 1, cv2.LINE_AA, 4)
            for side in (-1, 1):
                collar = [
                    (fx + side * 0.1 * sw, sy - 0.1 * sw),
                    (fx + side * 0.45 * sw, sy - 0.08 * sw),
                    (fx + side * 0.05 * sw, sy + 0.12 * body_len),
                ]
                _poly(img, mask, collar, lo, dark_top)
            if st.kind == "coat":
                for i in range(3):
                    _ellipse(
                        img,
                        mask,
                        (fx + 0.09 * sw, sy + (0.12 + 0.1 * i) * body_len),
                        (0.035 * sw, 0.035 * sw),
                        lo,
                        dark_top,
                    )
    else:  # the back: a seam down the middle
        za, zb = _pts([(fx, sy + 0.05 * body_len), (fx, hip_y)], lo)
        cv2.line(img, (int(za[0]), int(za[1])), (int(zb[0]), int(zb[1])), dark_top, lwid, cv2.LINE_AA, 4)
    ba, bb = _pts([(fx - 0.84 * sw, hip_y), (fx + 0.84 * sw, hip_y)], lo)
    cv2.line(
        img, (int(ba[0]), int(ba[1])), (int(bb[0]), int(bb[1])), _col(st.bottom, 1.0, 0.55), lwid + 1, cv2.LINE_AA, 4
    )
    # shading: rounder in the middle, darker at the sides and towards the feet; cloth texture
    xs = (np.arange(lw, dtype=np.float32) + lo[0] - fx) / max(sw, 1.0)
    ys = (np.arange(lh, dtype=np.float32) + lo[1] - sy) / max(body_len, 1.0)
    shade_x = 1.08 - 0.3 * np.clip(np.abs(xs + 0.15), 0, 1.3) ** 2
    shade_y = 1.0 - 0.12 * np.clip(ys, 0, 1)
    shade = shade_y[:, None] * shade_x[None, :] * gain
    tex = _fabric(p.actor.pid)
    reps = (lh // 256 + 1, lw // 256 + 1)
    shade = shade * np.tile(tex, reps)[:lh, :lw]
    layer = tone.apply(np.clip(img.astype(np.float32) * shade[:, :, None], 0, 255).astype(np.uint8))
    alpha = mask.astype(np.float32) * np.float32(1 / 255)
    if blur > 1:
        layer = np.asarray(cv2.blur(layer, (1, blur)), dtype=np.uint8)
        alpha = np.asarray(cv2.blur(alpha, (1, blur)), dtype=np.float32)
    _blend(canvas, layer, alpha, x0, y0)


# --- scene scripts -------------------------------------------------------------------------------------------------


def _style(rng: np.random.Generator) -> _Style:
    top, kind = _TOPS[int(rng.integers(len(_TOPS)))]
    bottom = _BOTTOMS[int(rng.integers(len(_BOTTOMS)))]
    return _Style(top, kind, bottom, (30, 30, 35), float(rng.uniform(0.97, 1.04)))


def _from_street(t: float, side: int, lane: float, speed: float = WALK) -> _Path:
    """Walk in from the street behind the opening's ``side`` edge to ``lane`` just inside the passage."""
    return _Path(t, side * 2.55, D_STREET).walk(lane, D_OPEN - 1.5, speed)


def _look_around(rng: np.random.Generator, t0: float, t1: float) -> Callable[[float], tuple[float, float]]:
    """Head turns while loitering: mostly frontal, glancing left and right now and then."""
    phases = rng.uniform(0, 2 * math.pi, size=3)

    def look(t: float) -> tuple[float, float]:
        if not t0 + 1.5 <= t <= t1:
            return 0.0, 0.0
        u = t - t0
        yaw = 0.55 * math.sin(2 * math.pi * u / 5.3 + phases[0]) ** 3 + 0.1 * math.sin(2 * math.pi * u / 1.7)
        roll = 6.0 * math.sin(2 * math.pi * u / 3.1 + phases[1])
        return yaw, roll

    return look


def build_scene(
    name: str,
    *,
    lighting: str = "day",
    seed: int = 0,
    size: tuple[int, int] = (1280, 720),
    fps: float = 25.0,
    qr_token: str | None = None,
    residents: tuple[str, ...] | None = None,
    stranger: str | None = None,
    faces_dir: Path = FACES_DIR,
) -> GateScene:
    """A scene from :data:`SCENES`; ``residents`` (the gallery) and ``stranger`` override the people."""
    if name not in SCENES:
        raise ValueError(f"unknown scene {name!r}; known: {', '.join(SCENES)}")
    if lighting not in _LIGHT:
        raise ValueError(f"unknown lighting {lighting!r}; known: {', '.join(LIGHTINGS)}")
    people = identities(faces_dir)
    gallery = tuple(residents) if residents is not None else ("obama", "biden")
    default_other = {"visitor_qr": "t1-0", "tailgater": "t1-5"}.get(name, "hopper")
    other = stranger if stranger is not None else default_other
    for ident in (*gallery, other):
        if ident not in people or ident == "obama-partial":
            raise ValueError(
                f"unknown identity {ident!r}; known: {', '.join(k for k in people if k != 'obama-partial')}"
            )
    if other in gallery:
        raise ValueError(f"the stranger {other!r} is one of the residents")
    if not gallery:
        raise ValueError("at least one resident is needed")
    if name == "two_residents" and len(gallery) < 2:
        raise ValueError("two_residents needs two residents")
    rng = np.random.default_rng([seed, 0])
    lane = float(rng.uniform(-0.25, 0.25))
    side = 1 if rng.random() < 0.5 else -1
    actors: list[_Actor] = []
    print_photo: FacePhoto | None = None
    token: str | None = None
    grants: tuple[str, ...] = ()
    tailgating = stranger_expected = attack = False

    def actor(
        identity: str,
        role: Role,
        path: _Path,
        *,
        look: Callable[[float], tuple[float, float]] | None = None,
        turned: float = 0.0,
        cap: bool = False,
        prop: _Prop | None = None,
    ) -> _Actor:
        a = _Actor(
            pid=len(actors) + 1,
            identity=identity,
            role=role,
            photo=people[identity][0],
            keys=path.keys,
            style=_style(rng),
            look=look,
            turned=turned,
            cap=cap,
            prop=prop,
        )
        actors.append(a)
        return a

    t_in = 0.4
    end = 6.0
    if name == "resident_approach":
        p = _from_street(t_in, side, lane).walk(lane, D_DOOR).stand(1.3).walk(lane, D_GONE)
        actor(gallery[0], "resident", p)
        grants, end = (gallery[0],), p.t + 0.4
    elif name == "stranger":
        p = _from_street(t_in, side, lane).walk(lane, D_DOOR).stand(4.0)
        t_loiter = p.t - 4.0
        p.walk(lane + 0.15, D_DOOR + 0.05, 0.5).stand(3.5).walk(lane - 0.1, D_DOOR, 0.5).stand(4.0)
        t_leave = p.t
        p.walk(lane, D_OPEN - 1.5).walk(-side * 2.55, D_STREET)
        actor(other, "stranger", p, look=_look_around(rng, t_loiter, t_leave))
        stranger_expected, end = True, p.t + 0.4
    elif name == "tailgater":
        p = _from_street(t_in, side, lane).walk(lane, D_DOOR).stand(1.3)
        t_go = p.t
        p.walk(lane, D_GONE)
        actor(gallery[0], "resident", p)
        # the follower crosses the door line ~1.25 s after the resident, at one steady pace
        d_line = D_DOOR * (STOP_Y - HORIZON) / (LINE_Y - HORIZON)
        t_res_cross = t_go + (D_DOOR - d_line) / WALK
        v = 1.2
        x_t = lane + 0.45 * (1 if lane < 0.1 else -1)
        q = _from_street(0.0, -side, x_t, v).walk(x_t, d_line, v)
        shift = t_res_cross + 1.25 - q.t
        q.keys = [(t + shift, x, d) for t, x, d in q.keys]
        q.walk(x_t, D_GONE, v)
        actor(other, "tailgater", q, turned=0.9 * side, cap=True)
        grants, tailgating, end = (gallery[0],), True, q.t + 0.4
    elif name == "two_residents":
        p = _from_street(t_in, side, lane).walk(lane, D_DOOR).stand(1.3).walk(lane, D_GONE)
        actor(gallery[0], "resident", p)
        q = _from_street(p.t - 6.0, -side, -lane).walk(-lane, D_DOOR).stand(1.3).walk(-lane, D_GONE)
        actor(gallery[1], "resident", q)
        grants, end = (gallery[0], gallery[1]), q.t + 0.4
    elif name == "visitor_qr":
        token = qr_token if qr_token is not None else DEFAULT_QR_TOKEN
        p = _from_street(t_in, side, lane).walk(lane, D_DOOR).stand(0.6)
        up = p.t
        p.stand(0.4 + 2.5 + 0.4 + 0.3)
        p.walk(lane, D_GONE)
        actor(other, "visitor", p, prop=_Prop("qr", up=up, down=up + 0.4 + 2.5))
        end = p.t + 0.4
    elif name in ("photo_attack", "screen_attack"):
        print_photo = people[gallery[0]][-1]
        d_raise = 7.0
        p = _from_street(t_in, side, lane).walk(lane, d_raise)
        up = p.t
        p.walk(lane, D_DOOR).stand(5.0)
        down = p.t - 0.4
        p.stand(0.3).walk(lane, D_OPEN - 1.5).walk(-side * 2.55, D_STREET)
        kind: Literal["photo", "screen"] = "photo" if name == "photo_attack" else "screen"
        actor(other, "attacker", p, prop=_Prop(kind, up=up, down=down, ramp=0.6))
        attack, end = True, p.t + 0.4
    return GateScene(
        name,
        lighting=lighting,
        seed=seed,
        size=size,
        fps=fps,
        duration=end,
        actors=actors,
        expect=_Expect(gallery, grants, tailgating, stranger_expected, attack),
        qr_token=token,
        print_photo=print_photo,
    )


# --- output --------------------------------------------------------------------------------------------------------


def write_video(scene: GateScene, path: Path) -> Path:
    """The scene as an MJPG ``.avi`` (OpenCV's own AVI writer; it reads back with ``cv2.VideoCapture``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), scene.fps, scene.size)
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path} with the MJPG codec")
    try:
        for frame, _ in scene.frames():
            writer.write(frame)
    finally:
        writer.release()
    return path


def contact_sheet(scenes: Sequence[GateScene], *, per_scene: int = 6, tile_w: int = 426) -> U8:
    """Frames of each scene tiled in a row (one row per scene), with the time and the truth drawn on them."""
    rows = []
    for scene in scenes:
        w, h = scene.size
        tile_h = round(tile_w * h / w)
        picks = _interesting_frames(scene, per_scene)
        tiles = []
        for i in picks:
            frame, truth = scene.render(i)
            for pt in truth.persons:
                if pt.face_box is not None:
                    cv2.rectangle(
                        frame, pt.face_box[:2], pt.face_box[2:], (0, 255, 0) if pt.face_visible else (0, 160, 255), 2
                    )
                cv2.rectangle(frame, pt.body_box[:2], pt.body_box[2:], (255, 200, 0), 1)
            for box, colour in ((truth.qr_box, (255, 0, 255)), (truth.attack_box, (0, 0, 255))):
                if box is not None:
                    cv2.rectangle(frame, box[:2], box[2:], colour, 2)
            ly = round(LINE_Y * h)
            cv2.line(frame, (round(0.05 * w), ly), (round(0.95 * w), ly), (0, 0, 255), 1)
            tile = np.asarray(cv2.resize(frame, (tile_w, tile_h), interpolation=cv2.INTER_AREA), dtype=np.uint8)
            label = f"{scene.name} {scene.lighting} t={truth.t:.1f}s"
            cv2.putText(tile, label, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(tile, label, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
        while len(tiles) < per_scene:
            tiles.append(np.zeros((tile_h, tile_w, 3), np.uint8))
        rows.append(np.hstack(tiles))
    return np.vstack(rows)


def _interesting_frames(scene: GateScene, n: int) -> list[int]:
    """Frames spread over the scene's action: from the first person seen to the last."""
    truths = scene.frame_truths()
    busy = [ft.index for ft in truths if ft.persons]
    if not busy:
        return [round(i * (scene.n_frames - 1) / max(1, n - 1)) for i in range(n)]
    # favour the interesting moments: at the door, presenting a pass, crossing
    key = [
        ft.index
        for ft in truths
        if ft.qr_box is not None or ft.attack_box is not None or any(p.face_visible for p in ft.persons)
    ]
    lo, hi = busy[0], busy[-1]
    picks = {round(lo + (hi - lo) * (i + 0.5) / n) for i in range(n)}
    if key:
        picks.add(key[len(key) // 2])
    for c in scene.truth.crossings:
        picks.add(min(scene.n_frames - 1, round(c.t * scene.fps)))
    ordered = sorted(picks)
    while len(ordered) > n:  # drop the pick closest to its neighbours
        gaps = [ordered[i + 1] - ordered[i - 1] for i in range(1, len(ordered) - 1)]
        ordered.pop(1 + int(np.argmin(gaps)))
    return ordered


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m firmware_sim.gatescene NAME[:LIGHTING]... [--out scene.avi] [--preview sheet.png]``."""
    ap = argparse.ArgumentParser(prog="python -m firmware_sim.gatescene", description=(__doc__ or "").split("\n")[0])
    ap.add_argument("names", nargs="+", metavar="NAME[:LIGHTING]", help=f"scenes: {', '.join(SCENES)}")
    ap.add_argument("--lighting", default="day", choices=LIGHTINGS, help="for names without their own")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", default="1280x720", help="WxH")
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--qr-token", default=None)
    ap.add_argument("--out", type=Path, default=None, help="write the (one) scene's video here (.avi, MJPG)")
    ap.add_argument("--preview", type=Path, default=None, help="write a contact sheet (PNG), a row per scene")
    ap.add_argument("--tiles", type=int, default=6, help="frames per scene on the contact sheet")
    ap.add_argument("--tile-width", type=int, default=426)
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    scenes = []
    for spec in args.names:
        name, _, lighting = spec.partition(":")
        scene = build_scene(
            name, lighting=lighting or args.lighting, seed=args.seed, size=(w, h), fps=args.fps, qr_token=args.qr_token
        )
        print(f"{scene.name}: {scene.n_frames} frames, {scene.n_frames / scene.fps:.1f} s, {scene.truth}")
        scenes.append(scene)
    if args.out is not None:
        if len(scenes) != 1:
            ap.error("--out takes one scene")
        print(write_video(scenes[0], args.out))
    if args.preview is not None:
        args.preview.parent.mkdir(parents=True, exist_ok=True)
        sheet = contact_sheet(scenes, per_scene=args.tiles, tile_w=args.tile_width)
        cv2.imwrite(str(args.preview), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(args.preview)
    if args.out is None and args.preview is None:
        print("nothing written: pass --out and/or --preview", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
