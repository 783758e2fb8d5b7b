"""The checks every deployed system's backend must pass (tests/indexer/backends/kit.py), once for all of them:
recall and scores against numpy brute force in both spaces, ids in the dataset's numbering, determinism and
order control as declared, the missing-extra error, and a run through the engine at the system's own default
ef (written here by hand from each system's source, as the README's table gives it). What is particular to
one system (storage types, query plans, servers) stays in its own test file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.indexer.backends import kit

# each system's default search ef, as read from its installed source (README: Deployed systems)
DEFAULT_EF = {"usearch": 64, "voyager": 10, "duckdb_vss": 64, "lancedb": 15, "milvus_lite": 64, "chroma": 100,
              "qdrant_edge": 100, "pgvector": 40}
SYSTEMS = list(DEFAULT_EF)
LEAN = {"M": 4, "ef_construction": 16}  # a lean graph at a low ef: the insertion order shows
# backends whose own file checks recall per storage or index type instead
OWN_RECALL_TEST = {"usearch", "lancedb"}


@pytest.mark.parametrize("space", ["ip", "l2"])
@pytest.mark.parametrize("name", [s for s in SYSTEMS if s not in OWN_RECALL_TEST])
def test_recall_and_scores(name: str, space: str) -> None:
    kit.check_recall_and_scores(name, {}, space, ef=None)


@pytest.mark.parametrize("name", [s for s in SYSTEMS if s != "lancedb"])  # lancedb: at ef 32, in its file
def test_ids_follow_the_dataset_numbering(name: str) -> None:
    kit.check_ids_follow_the_dataset_numbering(name, {}, ef=None)


@pytest.mark.parametrize("name", [s for s in SYSTEMS if s != "lancedb"])  # lancedb: per index type
def test_determinism_and_order(name: str) -> None:
    kit.check_determinism_and_order(name, LEAN, ef=10)


@pytest.mark.parametrize("name", SYSTEMS)
def test_missing_extra(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    kit.check_missing_extra(name, monkeypatch)


@pytest.mark.parametrize("name", SYSTEMS)
def test_engine_rows_at_the_systems_default_ef(name: str, tmp_path: Path) -> None:
    rows = kit.check_engine_rows(name, {}, tmp_path)
    assert {r.ef for r in rows} == {DEFAULT_EF[name]}
