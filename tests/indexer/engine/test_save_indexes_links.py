"""`--save-indexes` hard-links each index file to the cached one where the filesystem allows, copies it
otherwise, and the two never change each other: the cache and the report only replace files, whole."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from indexer import pipeline
from indexer.common.fileio import sha256_file
from indexer.engine.spec import parse_spec

SPEC = {
    "name": "links", "k": 5, "orderings": ["random"], "seeds": [0], "lid": {"k": 5},
    "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 4], "points_per_subspace": 150,
                "queries_per_subspace": 5, "ambient_dim": 8, "seed": 1},
    "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 32, "ef_search": [10]},
                 {"name": "faiss_hnsw", "M": 8, "ef_search": [10]}],
}


def saved(cache: Path, out: Path, **kwargs: bool) -> list[tuple[Path, Path]]:
    """Run with --save-indexes; each index file of the report, with the cached file it comes from."""
    result = pipeline.run_and_report(parse_spec(SPEC), cache_dir=cache, out_dir=out, save_indexes=True, **kwargs)
    pairs = []
    for record in result.indexes:
        cell = Path(record.path)  # type: ignore[arg-type]
        for cached in sorted(cell.glob("index.bin*")):
            pairs.append((out / "indexes" / cell.name / cached.name, cached))
    assert len(pairs) >= 3  # hnswlib's index.bin, faiss's and its order.npy
    return pairs


def test_saved_indexes_are_hard_links_on_one_filesystem(tmp_path: Path) -> None:
    for report, cached in saved(tmp_path / "cache", tmp_path / "out"):
        assert os.stat(report).st_ino == os.stat(cached).st_ino and os.stat(cached).st_nlink == 2


def test_a_refused_link_copies_instead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refusals = []

    def refuse(src: object, dst: object, **_: object) -> None:
        refusals.append(dst)
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", refuse)
    pairs = saved(tmp_path / "cache", tmp_path / "out")
    assert len(refusals) == len(pairs)
    for report, cached in pairs:
        assert os.stat(report).st_ino != os.stat(cached).st_ino and os.stat(cached).st_nlink == 1
        assert sha256_file(report) == sha256_file(cached)


def test_a_fresh_rerun_leaves_the_saved_indexes_as_they_were(tmp_path: Path) -> None:
    first = saved(tmp_path / "cache", tmp_path / "out")
    digests = {report: sha256_file(report) for report, _ in first}
    # the cells are built again and their files replaced in the cache: a write into a shared inode would show
    second = saved(tmp_path / "cache", tmp_path / "out2", fresh=True)
    assert {report: sha256_file(report) for report, _ in first} == digests
    for (_, old), (report, cached) in zip(first, second, strict=True):
        assert old == cached and os.stat(report).st_ino == os.stat(cached).st_ino
        assert os.stat(cached).st_ino not in {os.stat(r).st_ino for r, _ in first}  # a new file, not rewritten
