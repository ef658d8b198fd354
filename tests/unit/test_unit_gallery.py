"""edge.gate.gallery: the embedding wire format, versioned puts and deletes, the 1:N search, change detection."""

from __future__ import annotations

import base64
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from edge.gate.gallery import Gallery, GalleryError, GalleryIndex, Match, decode_embedding, encode_embedding
from harness import REPO
from vision.faces import EMBEDDING_DIM

Vec = npt.NDArray[np.float32]


def unit(rng: np.random.Generator, n: int | None = None) -> Vec:
    """Random unit vectors: one (128,) or an (n, 128) matrix."""
    shape = (EMBEDDING_DIM,) if n is None else (n, EMBEDDING_DIM)
    v = rng.standard_normal(shape).astype(np.float32)
    return np.asarray(v / np.linalg.norm(v, axis=-1, keepdims=True), dtype=np.float32)


@pytest.fixture
def gallery(tmp_path: Path) -> Gallery:
    return Gallery(tmp_path / "gallery.db")


# --------------------------------------------------------------------------- the wire format


def test_an_embedding_survives_encode_and_decode() -> None:
    v = unit(np.random.default_rng(1))
    text = encode_embedding(v)
    raw = base64.b64decode(text)
    assert len(raw) == EMBEDDING_DIM * 4
    assert np.array_equal(np.frombuffer(raw, dtype="<f4"), v)  # little-endian float32, bit for bit
    back = decode_embedding(text)
    assert back.dtype == np.float32 and back.shape == (EMBEDDING_DIM,)
    np.testing.assert_allclose(back, v, rtol=0, atol=1e-7)


def test_decode_makes_a_non_unit_vector_unit_length() -> None:
    v = np.arange(1, EMBEDDING_DIM + 1, dtype=np.float32)
    back = decode_embedding(encode_embedding(v))
    assert float(np.linalg.norm(back)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(back, v / np.linalg.norm(v), atol=1e-7)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is not base64!", "not base64"),
        ("QUJ", "not base64"),  # bad padding
        (base64.b64encode(np.zeros(127, dtype="<f4").tobytes()).decode(), "508 bytes, 512 expected"),
        (base64.b64encode(np.zeros(129, dtype="<f4").tobytes()).decode(), "516 bytes, 512 expected"),
        ("", "0 bytes, 512 expected"),
        (encode_embedding(np.full(EMBEDDING_DIM, np.nan, dtype=np.float32)), "NaN or infinity"),
        (encode_embedding(np.r_[np.ones(127), np.inf].astype(np.float32)), "NaN or infinity"),
        (encode_embedding(np.zeros(EMBEDDING_DIM, dtype=np.float32)), "zero length"),
    ],
)
def test_decode_refuses_what_is_not_a_usable_embedding(text: str, message: str) -> None:
    with pytest.raises(GalleryError, match=message):
        decode_embedding(text)


def test_one_nan_among_good_numbers_is_refused() -> None:
    v = unit(np.random.default_rng(2))
    v[77] = np.nan
    with pytest.raises(GalleryError, match="NaN"):
        decode_embedding(encode_embedding(v))


# --------------------------------------------------------------------------- puts, deletes and versions


def test_put_stores_a_unit_embedding_and_digest_lists_versions(gallery: Gallery) -> None:
    rng = np.random.default_rng(3)
    a, b = unit(rng), unit(rng)
    assert gallery.put("r-2", "Li Lei", 3.0 * b, version=7)  # normalised on the way in
    assert gallery.put("r-1", "Wang Li", a, version=5)
    assert gallery.digest() == {"r-1": 5, "r-2": 7}
    assert len(gallery) == 2
    idx = gallery.index()
    assert idx.ids == ["r-1", "r-2"] and idx.names == ["Wang Li", "Li Lei"]
    np.testing.assert_allclose(idx.matrix, np.stack([a, b]), atol=1e-6)


def test_a_newer_put_replaces_an_equal_one_is_accepted_an_older_one_is_refused(gallery: Gallery) -> None:
    rng = np.random.default_rng(4)
    first, second, stale = unit(rng), unit(rng), unit(rng)
    assert gallery.put("r-1", "Old Name", first, version=10)
    assert gallery.put("r-1", "New Name", second, version=20)
    assert gallery.put("r-1", "Stale", stale, version=15) is False  # late, older: nothing changes
    assert gallery.digest() == {"r-1": 20}
    idx = gallery.index()
    assert idx.names == ["New Name"]
    np.testing.assert_allclose(idx.matrix[0], second, atol=1e-6)
    assert gallery.put("r-1", "Resent", second, version=20)  # the same version again (a retried command)
    assert gallery.index().names == ["Resent"]


def test_an_older_put_after_a_newer_delete_does_not_resurrect(gallery: Gallery) -> None:
    rng = np.random.default_rng(5)
    assert gallery.put("r-1", "A", unit(rng), version=1)
    assert gallery.delete("r-1", version=3) is True
    assert gallery.put("r-1", "A", unit(rng), version=2) is False
    assert gallery.digest() == {}
    assert len(gallery.index()) == 0
    assert gallery.put("r-1", "A again", unit(rng), version=4)  # a put newer than the delete does come back
    assert gallery.digest() == {"r-1": 4}


def test_an_older_delete_after_a_newer_put_is_refused(gallery: Gallery) -> None:
    assert gallery.put("r-1", "A", unit(np.random.default_rng(6)), version=9)
    assert gallery.delete("r-1", version=8) is False
    assert gallery.digest() == {"r-1": 9}


def test_deleting_an_unknown_resident_leaves_a_tombstone(gallery: Gallery) -> None:
    assert gallery.delete("r-9", version=50) is False  # nothing was there ...
    assert gallery.put("r-9", "Late", unit(np.random.default_rng(7)), version=40) is False  # ... but it is remembered
    assert gallery.digest() == {}


def test_a_removed_residents_embedding_and_name_are_nowhere_in_the_files(tmp_path: Path) -> None:
    """secure_delete zeroes the freed cells and the WAL is emptied: no copy left for whoever takes the gate's disk."""
    path = tmp_path / "gallery.db"
    g = Gallery(path)
    reader = Gallery(path)  # the vision process's connection, as at a running gate
    rng = np.random.default_rng(7)
    others = unit(rng, 30)
    for i, v in enumerate(others):
        g.put(f"r-{i}", f"Resident {i}", v, version=1)
    v = unit(rng)
    g.put("r-gone", "Zhang Wei-unique-name", v, version=2)
    assert len(reader.index_if_changed() or reader.index()) == 31
    index = g.index()
    stored = index.matrix[index.ids.index("r-gone")].astype("<f4").tobytes()  # as the gallery wrote it

    def on_disk() -> bytes:
        return b"".join(p.read_bytes() for p in sorted(tmp_path.iterdir()) if p.name.startswith("gallery.db"))

    assert stored[:64] in on_disk() and b"Zhang Wei-unique-name" in on_disk()  # the check can see it
    assert g.delete("r-gone", version=3) is True
    assert stored[:16] not in on_disk() and b"Zhang Wei-unique-name" not in on_disk()
    assert (tmp_path / "gallery.db-wal").stat().st_size == 0 and g.checkpoints_busy == 0
    assert g.digest() == {f"r-{i}": 1 for i in range(30)}  # the others are all still there
    assert reader.index_if_changed() is not None and len(reader.index()) == 30


def test_put_refuses_bad_embeddings_and_an_empty_id(gallery: Gallery) -> None:
    v = unit(np.random.default_rng(8))
    with pytest.raises(GalleryError, match="128 finite numbers"):
        gallery.put("r-1", "A", v[:100])
    bad = v.copy()
    bad[0] = np.nan
    with pytest.raises(GalleryError, match="finite"):
        gallery.put("r-1", "A", bad)
    with pytest.raises(GalleryError, match="needs an id"):
        gallery.put("", "A", v)
    assert gallery.digest() == {}


def test_the_gallery_survives_closing_and_reopening(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    vecs = unit(rng, 3)
    g = Gallery(tmp_path / "sub" / "gallery.db")  # the folder is made
    for i, v in enumerate(vecs):
        assert g.put(f"r-{i}", f"Person {i}", v, version=100 + i)
    assert g.delete("r-1", version=200)
    g.close()

    g2 = Gallery(tmp_path / "sub" / "gallery.db")
    assert g2.digest() == {"r-0": 100, "r-2": 102}
    idx = g2.index()
    assert idx.ids == ["r-0", "r-2"] and idx.names == ["Person 0", "Person 2"]
    np.testing.assert_allclose(idx.matrix, vecs[[0, 2]], atol=1e-6)
    assert g2.put("r-1", "Person 1", vecs[1], version=150) is False  # the tombstone survived too
    g2.close()


# --------------------------------------------------------------------------- the search


def brute_force(matrix: Vec, q: Vec) -> tuple[int, float, float]:
    d = np.linalg.norm(matrix.astype(np.float64) - q.astype(np.float64), axis=1)
    order = np.argsort(d)
    return int(order[0]), float(d[order[0]]), float(d[order[1]]) if len(d) > 1 else 2.0


def test_an_empty_gallery_finds_nobody(gallery: Gallery) -> None:
    idx = gallery.index()
    assert len(idx) == 0
    assert idx.search(unit(np.random.default_rng(10))) is None
    assert GalleryIndex.empty().search(unit(np.random.default_rng(10))) is None


@pytest.mark.parametrize("n", [1, 2, 3, 10, 257])
def test_search_finds_the_exact_nearest_resident_with_the_true_distances(gallery: Gallery, n: int) -> None:
    rng = np.random.default_rng(100 + n)
    vecs = unit(rng, n)
    ids = [f"r-{i:04d}" for i in range(n)]  # zero-padded: the index's order (by id) is the insertion order
    for rid, v in zip(ids, vecs, strict=True):
        gallery.put(rid, rid.upper(), v, version=1)
    idx = gallery.index()
    assert len(idx) == n
    queries = list(unit(rng, 40))
    # queries close to a resident (the case that matters), and each resident itself
    queries += [v + 0.3 * unit(rng) for v in vecs[:10]]
    for raw in queries:
        q = np.asarray(raw / np.linalg.norm(raw), dtype=np.float32)
        m = idx.search(q)
        assert m is not None
        best, d1, d2 = brute_force(vecs, q)
        assert m.resident == ids[best] and m.name == ids[best].upper()
        assert m.distance == pytest.approx(d1, abs=2e-5)
        assert m.runner_up == pytest.approx(d2, abs=2e-5)
        assert m.distance <= m.runner_up
        np.testing.assert_allclose(idx.distances(q), np.linalg.norm(vecs - q, axis=1), atol=2e-5)
    for i, v in enumerate(vecs[:5]):
        m = idx.search(v)
        assert m is not None and m.resident == ids[i]
        assert m.distance < 1e-3


def test_one_resident_has_no_runner_up_and_two_have_each_other() -> None:
    a = np.zeros(EMBEDDING_DIM, dtype=np.float32)
    a[0] = 1.0
    b = np.zeros(EMBEDDING_DIM, dtype=np.float32)
    b[1] = 1.0
    one = GalleryIndex(["r-a"], ["A"], a[None, :])
    assert one.search(a) == Match("r-a", "A", 0.0, 2.0)
    assert one.search(-a) == Match("r-a", "A", 2.0, 2.0)
    two = GalleryIndex(["r-a", "r-b"], ["A", "B"], np.stack([a, b]))
    m = two.search(b)
    assert m is not None and (m.resident, m.distance) == ("r-b", 0.0)
    assert m.runner_up == pytest.approx(np.sqrt(2.0), abs=1e-6)  # orthogonal unit vectors
    q = np.asarray([0.8, 0.6] + [0.0] * (EMBEDDING_DIM - 2), dtype=np.float32)
    m = two.search(q)
    assert m is not None and m.resident == "r-a"
    assert m.distance == pytest.approx(float(np.linalg.norm(q - a)), abs=1e-6)  # sqrt(0.4)
    assert m.runner_up == pytest.approx(float(np.linalg.norm(q - b)), abs=1e-6)  # sqrt(0.8)
    # the same with the nearest second in the matrix: argpartition's order must not matter
    two_rev = GalleryIndex(["r-b", "r-a"], ["B", "A"], np.stack([b, a]))
    assert two_rev.search(q) == Match("r-a", "A", m.distance, m.runner_up)


def test_an_index_refuses_a_matrix_that_does_not_match_its_ids() -> None:
    with pytest.raises(ValueError, match="does not match 2 ids"):
        GalleryIndex(["a", "b"], ["A", "B"], np.zeros((3, EMBEDDING_DIM), dtype=np.float32))
    with pytest.raises(ValueError, match="does not match"):
        GalleryIndex(["a"], ["A"], np.zeros((1, 64), dtype=np.float32))


# --------------------------------------------------------------------------- change detection


def test_index_if_changed_sees_its_own_and_another_connections_commits(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    path = tmp_path / "gallery.db"
    vision = Gallery(path)  # the vision process's view
    handler = Gallery(path)  # the command handler's, on the same file
    first = vision.index_if_changed()
    assert first is not None and len(first) == 0  # no index yet: one is made
    assert vision.index_if_changed() is None

    assert handler.put("r-1", "A", unit(rng), version=1)
    idx = vision.index_if_changed()
    assert idx is not None and idx.ids == ["r-1"]
    assert vision.index_if_changed() is None

    assert handler.put("r-1", "A", unit(rng), version=0) is False  # refused: nothing committed
    assert vision.index_if_changed() is None

    assert handler.delete("r-1", version=2)
    idx = vision.index_if_changed()
    assert idx is not None and len(idx) == 0
    assert vision.index_if_changed() is None

    assert vision.put("r-2", "B", unit(rng), version=1)  # its own commit counts too
    idx = vision.index_if_changed()
    assert idx is not None and idx.ids == ["r-2"]
    assert vision.index_if_changed() is None
    vision.close()
    handler.close()


def test_index_if_changed_sees_a_commit_from_another_process(tmp_path: Path) -> None:
    path = tmp_path / "gallery.db"
    vision = Gallery(path)
    assert vision.put("r-1", "A", unit(np.random.default_rng(12)), version=1)
    assert vision.index_if_changed() is not None
    assert vision.index_if_changed() is None
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from edge.gate.gallery import Gallery
        g = Gallery(__import__("pathlib").Path(sys.argv[1]))
        v = np.zeros(128, dtype=np.float32)
        v[5] = 1.0
        assert g.put("r-other", "From Another Process", v, version=42)
        g.close()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    idx = vision.index_if_changed()
    assert idx is not None and idx.ids == ["r-1", "r-other"]
    assert idx.names[1] == "From Another Process"
    assert vision.digest() == {"r-1": 1, "r-other": 42}
    q = np.zeros(EMBEDDING_DIM, dtype=np.float32)
    q[5] = 1.0
    m = idx.search(q)
    assert m is not None and m.resident == "r-other" and m.distance == 0.0
    assert vision.index_if_changed() is None
    vision.close()
