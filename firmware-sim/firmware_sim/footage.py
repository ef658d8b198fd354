"""Real footage of people walking, for measuring the door-line counter: fetched from a registry package at setup.

The gate scenes (:mod:`firmware_sim.gatescene`) are synthetic; the counter must also be measured on real
people (groups, crossing paths, shadows). ``python -m firmware_sim.footage`` (run by ``scripts/setup.sh``)
downloads each package once, checks it and keeps only the video, in ``.cache/footage/``:

- ``vtest.avi``: OpenCV's sample video (768 x 576, 10 fps, 795 frames: people walking across a campus
  crossroads, seen from high up, PETS 2009 material), from Debian's ``opencv-doc`` 4.6.0+dfsg-12 (BSD-3 /
  Apache-2.0 per its copyright file), ``usr/share/doc/opencv-doc/examples/data/vtest.avi``. The same file is in
  the ``opencv-python`` 5.1.0.95 sdist.

What was counted on it by hand is in ``bench/data/`` (one JSON file per video: the lines, the rule, every
crossing); nothing here is used by a test or a gate.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .facesets import download

__all__ = ["FOOTAGE", "FOOTAGE_DIR", "Footage", "fetch_footage", "footage_path"]

FOOTAGE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "footage"


@dataclass(frozen=True)
class Footage:
    name: str  # the file's name in the footage folder
    url: str  # the Debian package
    member: str  # the file's path inside the package's data archive
    sha256: str  # of the video itself
    what: str
    licence: str


FOOTAGE: tuple[Footage, ...] = (
    Footage(
        name="vtest.avi",
        url="http://deb.debian.org/debian/pool/main/o/opencv/opencv-doc_4.6.0%2Bdfsg-12_all.deb",
        member="./usr/share/doc/opencv-doc/examples/data/vtest.avi",
        sha256="45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
        what="768x576, 10 fps, 795 frames: pedestrians at a campus crossroads from high up (PETS 2009)",
        licence="Debian opencv-doc 4.6.0+dfsg-12: BSD-3 / Apache-2.0 (debian/copyright); PETS 2009 material",
    ),
)


def footage_path(name: str, root: Path = FOOTAGE_DIR) -> Path:
    """The fetched video ``name``; :class:`FileNotFoundError` saying what to run if it is not there."""
    path = root / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not fetched: run `python -m firmware_sim.footage`")
    return path


def _deb_member(deb: bytes, member: str) -> bytes:
    """A file out of a .deb: an ``ar`` archive whose ``data.tar.*`` holds the package's files."""
    if deb[:8] != b"!<arch>\n":
        raise ValueError("not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(deb):
        header = deb[pos : pos + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        body = deb[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                f = tar.extractfile(member)
                if f is None:
                    raise ValueError(f"{member} is not a file in the package")
                return f.read()
    raise ValueError("the package has no data archive")


def fetch_footage(
    root: Path = FOOTAGE_DIR, *, footage: tuple[Footage, ...] = FOOTAGE, download: Callable[[str], bytes] = download
) -> list[Path]:
    """Fetch every video not yet in ``root``; :class:`ValueError` if what comes is not the pinned file."""
    out = []
    for f in footage:
        path = root / f.name
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == f.sha256:
            out.append(path)
            continue
        try:
            data = _deb_member(download(f.url), f.member)
        except (KeyError, tarfile.TarError) as exc:
            raise ValueError(f"{f.url}: {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest != f.sha256:
            raise ValueError(f"{f.url}: {f.member} has SHA-256 {digest}, not the pinned {f.sha256}: not used")
        root.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(".part")
        part.write_bytes(data)
        part.replace(path)
        out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m firmware_sim.footage", description=__doc__.split("\n\n")[0])
    ap.add_argument("cmd", nargs="?", default="fetch", choices=["fetch", "list"])
    ap.add_argument("--dir", type=Path, default=FOOTAGE_DIR)
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for f in FOOTAGE:
            print(f"{f.name}: {f.what}; {f.licence}")
        return 0
    try:
        for p in fetch_footage(args.dir):
            print(p)
    except (OSError, ValueError) as exc:
        print(f"firmware_sim.footage: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
