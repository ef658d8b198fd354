"""More real faces for measuring the recognisers: group photos and folders of one person, from registry packages.

The gate scenes' photos (:mod:`firmware_sim.faces`) are 14 faces: enough to build scenes, far too few to say
how often a stranger matches a resident. These sets add about a hundred, for ``bench/face_models.py`` only
(nothing here is used by a test or a gate). ``python -m firmware_sim.facesets fetch`` (run by
``scripts/setup.sh``) downloads each package once, checks its SHA-256 and keeps only the photos, in
``.cache/facesets/<set>/``:

- ``dlib-examples``: Debian's source of dlib 19.24 (``dlib_19.24+dfsg.orig.tar.bz2``, the upstream tree):
  ``examples/faces/20*.jpg``, nine PASCAL VOC photos of 2 to 7 people each (``group``), and
  ``examples/johns/<name>/``, five men, 11 photos each (``folders``). Debian's copyright file gives
  ``examples/*`` as "Creative-Commons-Public-Domain".
- ``face-api-samples``: npm ``@vladmandic/face-api@1.7.15`` (MIT), ``package/demo/sample1..6.jpg``, six group
  photos of young women (``group``); the photos' own source is not stated.

Identities are kept honest by construction: in a ``group`` photo every face is a different person, and so is
every pair from different sets; two photos of one set are the same person only in a ``folders`` set. Two
different photos of a ``group`` set may show the same person (one woman is in two of the face-api samples), so
such pairs are neither genuine nor impostor: :func:`pair_kind` says ``None``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["FACESETS", "FACESETS_DIR", "FaceSet", "SetPhoto", "download", "fetch_facesets", "pair_kind", "photos"]

FACESETS_DIR = Path(__file__).resolve().parents[2] / ".cache" / "facesets"


@dataclass(frozen=True)
class FaceSet:
    id: str
    url: str  # the package's archive in its registry
    sha256: str
    size: int
    package: str  # what it is, for people
    #: (member prefix, kind): members under the prefix ending in .jpg; ``folders`` members are <prefix><person>/x.jpg
    parts: tuple[tuple[str, Literal["group", "folders"]], ...]
    licence: str
    exclude: tuple[str, ...] = ()  # member names (the file's name) not taken


FACESETS: tuple[FaceSet, ...] = (
    FaceSet(
        id="dlib-examples",
        url="http://deb.debian.org/debian/pool/main/d/dlib/dlib_19.24%2Bdfsg.orig.tar.bz2",
        sha256="66b4263822a2ff91a3e769e501c7d7927a13089e178c1427ec19cb0475823cf6",
        size=8_636_409,
        package="Debian source package dlib 19.24+dfsg-1 (orig tarball)",
        parts=(("dlib-19.24+dfsg/examples/faces/20", "group"), ("dlib-19.24+dfsg/examples/johns/", "folders")),
        licence='examples/*: "Creative-Commons-Public-Domain" (debian/copyright); dlib itself Boost-1.0',
    ),
    FaceSet(
        id="face-api-samples",
        url="https://registry.npmjs.org/@vladmandic/face-api/-/face-api-1.7.15.tgz",
        sha256="0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
        size=12_677_476,
        package="npm @vladmandic/face-api@1.7.15",
        parts=(("package/demo/sample", "group"),),
        licence="MIT (the package); the photos' source is not stated",
    ),
)


@dataclass(frozen=True)
class SetPhoto:
    set_id: str
    path: Path
    kind: Literal["group", "folders"]
    person: str | None  # the folder's name for ``folders``; None for a group photo (each face its own person)


def photos(root: Path = FACESETS_DIR, sets: tuple[FaceSet, ...] = FACESETS) -> list[SetPhoto]:
    """Every fetched photo; :class:`FileNotFoundError` saying what to run if a set is missing."""
    out: list[SetPhoto] = []
    for fs in sets:
        d = root / fs.id
        if not (d / ".complete").is_file():
            raise FileNotFoundError(f"face set {fs.id} is not fetched ({d}): run `python -m firmware_sim.facesets`")
        for p in sorted((d / "group").glob("*.jpg")):
            out.append(SetPhoto(fs.id, p, "group", None))
        for p in sorted((d / "folders").glob("*/*.jpg")):
            out.append(SetPhoto(fs.id, p, "folders", p.parent.name))
    return out


def pair_kind(a: tuple[SetPhoto, int], b: tuple[SetPhoto, int]) -> Literal["genuine", "impostor"] | None:
    """Whether two faces (a photo and the face's index in it) are the same person, different people, or not
    known (two photos of one group set)."""
    (pa, ia), (pb, ib) = a, b
    if pa.set_id != pb.set_id:
        return "impostor"
    if pa.path == pb.path:
        return None if ia == ib else "impostor"
    if pa.kind == "folders" and pb.kind == "folders":
        return "genuine" if pa.person == pb.person else "impostor"
    return None


def _members(fs: FaceSet, archive: bytes) -> dict[str, bytes]:
    """relative path -> bytes of each photo the set takes from its archive."""
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
        for m in tar.getmembers():
            if not m.isfile() or not m.name.lower().endswith(".jpg") or m.name.rsplit("/", 1)[-1] in fs.exclude:
                continue
            for prefix, kind in fs.parts:
                if not m.name.startswith(prefix):
                    continue
                rest = m.name[len(prefix) :]
                if kind == "folders" and rest.count("/") != 1:
                    continue
                name = rest if kind == "folders" else m.name.rsplit("/", 1)[-1]
                f = tar.extractfile(m)
                if f is not None:
                    out[f"{kind}/{name}"] = f.read()
    return out


def download(url: str) -> bytes:
    """The body at ``url`` (a registry's archive), in memory."""
    with urllib.request.urlopen(url, timeout=300) as r:
        data: bytes = r.read()
    return data


def fetch_facesets(
    root: Path = FACESETS_DIR, *, sets: tuple[FaceSet, ...] = FACESETS, download: Callable[[str], bytes] = download
) -> list[Path]:
    """Fetch every set not yet complete in ``root``; :class:`ValueError` if an archive is not the pinned one."""
    done = []
    for fs in sets:
        d = root / fs.id
        if (d / ".complete").is_file():
            done.append(d)
            continue
        data = download(fs.url)
        digest = hashlib.sha256(data).hexdigest()
        if digest != fs.sha256:
            raise ValueError(f"{fs.url}: SHA-256 {digest}, not the pinned {fs.sha256}: not used")
        files = _members(fs, data)
        if not files:
            raise ValueError(f"{fs.package} has no photos under {[p for p, _ in fs.parts]}")
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            for rel, content in files.items():
                path = Path(tmp) / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
            (Path(tmp) / ".complete").write_text(f"{fs.package}\n{fs.url}\n{fs.sha256}\n{fs.licence}\n")
            if d.exists():
                shutil.rmtree(d)
            shutil.move(tmp, d)
        done.append(d)
    return done


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m firmware_sim.facesets", description=__doc__.split("\n\n")[0])
    ap.add_argument("cmd", nargs="?", default="fetch", choices=["fetch", "list"])
    ap.add_argument("--dir", type=Path, default=FACESETS_DIR)
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for fs in FACESETS:
            print(f"{fs.id}: {fs.package} ({fs.size:,} bytes), {fs.licence}")
        return 0
    try:
        for d in fetch_facesets(args.dir):
            print(d)
    except (OSError, ValueError, tarfile.TarError) as exc:
        print(f"firmware_sim.facesets: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
