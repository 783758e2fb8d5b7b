"""Admission: a spec's size is estimated from the spec alone and checked against the limits."""

from __future__ import annotations

from typing import Any

import pytest

from indexer.engine.admission import AdmissionError, Limits, admit, estimate
from indexer.engine.spec import parse_spec


def _spec(**changes: Any) -> Any:
    spec: dict[str, Any] = {
        "name": "admission",
        "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 4], "points_per_subspace": 1000,
                    "queries_per_subspace": 50, "ambient_dim": 64},
        "backends": [{"name": "hnswlib"}],
    }
    spec.update(changes)
    return parse_spec(spec)


def test_a_small_spec_is_admitted_with_its_estimate() -> None:
    est = admit(_spec(), Limits())
    assert (est.cells, est.base_vectors, est.dim, est.queries) == (1, 2000, 64, 100)
    assert est.base_bytes == 2000 * 64 * 4


def test_terabytes_of_synthetic_points_are_refused_naming_the_limit_and_the_size() -> None:
    spec = _spec(dataset={"kind": "synthetic", "intrinsic_dims": [2, 4, 8], "points_per_subspace": 10**9,
                          "ambient_dim": 256})
    with pytest.raises(AdmissionError, match=r"max_base_bytes: 3,000,000,000 base vectors x 256 dims .* 2\.8 TiB"):
        admit(spec, Limits())


@pytest.mark.parametrize(
    "changes,limit",
    [
        ({"seeds": list(range(40)), "orderings": ["random", "lid_asc", "lid_desc", "category", "cluster"],
          "backends": [{"name": "hnswlib", "M": m} for m in (4, 8, 16, 32, 48, 64)]}, "max_cells"),
        ({"dataset": {"kind": "synthetic", "intrinsic_dims": [2], "queries_per_subspace": 200_000,
                      "ambient_dim": 8}}, "max_queries"),
        ({"orderings": ["cluster"], "clusters": 50_000,
          "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 4], "points_per_subspace": 100_000,
                      "ambient_dim": 8}}, "max_clusters"),
        ({"dataset": {"kind": "text", "corpus": "wordnet", "models": ["all-MiniLM-L6-v2", "minilm-l3",
                                                                       "minilm-cls", "glove-avg", "minilm-cls"]}},
         "max_embedded_texts"),
    ],
    ids=["cells", "queries", "clusters", "embedding"],
)
def test_each_limit_is_enforced(changes: dict[str, Any], limit: str) -> None:
    try:
        spec = _spec(**changes)
    except Exception as err:  # a spec rule may catch it first (e.g. repeated models)
        pytest.skip(f"the spec itself refuses this: {err}")
    with pytest.raises(AdmissionError, match=limit):
        admit(spec, Limits())
    admit(spec, None)  # lifted limits (the CLI's --no-limits) admit it


def test_glove_reduction_beyond_50_dims_is_refused_even_without_limits() -> None:
    spec = _spec(dataset={"kind": "glove", "n": 1000, "queries": 10}, reductions=[{"name": "pca", "dims": 64}])
    with pytest.raises(AdmissionError, match="pca-64 ask for more dimensions than the input's 50"):
        admit(spec, None)


def test_k_over_the_smallest_index_is_refused() -> None:
    with pytest.raises(AdmissionError, match="k: 500 is larger than the smallest index"):
        admit(_spec(k=500, index_sizes=[400, "all"]), Limits())


def test_file_datasets_are_sized_when_loaded() -> None:
    spec = _spec(dataset={"kind": "file", "path": "/nowhere/x.npy"})
    assert estimate(spec).base_bytes is None
    admit(spec, Limits())


def test_a_runbook_of_many_checkpoints_under_filters_is_refused_by_its_work() -> None:
    """An attacker's runbook: 100k points inserted 10 at a time, a checkpoint after each batch (10,000) in each
    of three seeds, every one re-searched under two filters at four selectivities. Each checkpoint's searches, ef bisections, self-miss
    sample, exact filtered answers and filtered passes count: over max_work, while the same inserts with one
    checkpoint at the end are admitted, and the filters add work of their own."""
    dataset = {"kind": "synthetic", "intrinsic_dims": [8, 16], "points_per_subspace": 50_000,
               "queries_per_subspace": 500, "ambient_dim": 64}
    filters = [{"name": "rnd", "kind": "random", "selectivities": [0.5, 0.1, 0.01]},
               {"name": "own", "kind": "label"}]
    every_batch = [{"insert": {"by": "random", "batch": 10, "checkpoints": True}}]
    hostile = _spec(dataset=dataset, filters=filters, runbook=every_batch, seeds=[0, 1, 2])
    with pytest.raises(AdmissionError, match=r"max_work"):
        admit(hostile, Limits())
    once = _spec(dataset=dataset, filters=filters, runbook=[{"insert": {"by": "random", "batch": 10}}, {"search": {}}],
                 seeds=[0, 1, 2])
    admit(once, Limits())
    unfiltered = _spec(dataset=dataset, runbook=every_batch, seeds=[0, 1, 2])
    work = {name: estimate(s).work for name, s in (("hostile", hostile), ("unfiltered", unfiltered), ("once", once))}
    assert all(w is not None for w in work.values())
    hostile_s, unfiltered_s, once_s = (work[n].core_seconds for n in ("hostile", "unfiltered", "once"))  # type: ignore[union-attr]
    assert hostile_s > unfiltered_s > 100 * once_s
