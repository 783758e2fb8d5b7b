"""Overview: the dataset in a sentence and the grid the experiment ran."""

from __future__ import annotations

import json

from indexer.engine.spec import ExperimentSpec
from indexer.report.blocks import Bullets, Para, Section
from indexer.report.results import Results


def overview_section(res: Results) -> Section:
    spec = res.spec
    backends = []
    for b in spec.backends:
        params = [f"{k}={v}" for k, v in b.build_params().items()]
        efs = getattr(b, "ef_search", None)
        if efs:
            params.append("ef " + ", ".join(str(e) for e in efs))
        backends.append(b.name + (f" ({'; '.join(params)})" if params else ""))
    sizes = ", ".join(f"{s:,}" if isinstance(s, int) else str(s) for s in spec.index_sizes)
    grid = [
        f"Metric {spec.metric}; recall@{spec.k} against exact k-nearest neighbours.",
        "Insertion orderings: " + ", ".join(spec.orderings) + ".",
        "Backends: " + "; ".join(backends) + ".",
        "Reductions: " + ", ".join(r.label for r in spec.reductions) + ".",
        "Representations: " + ", ".join(spec.representations) + f"; index sizes: {sizes}.",
        f"Seeds: {', '.join(str(s) for s in spec.seeds)}; pointwise LID with k={spec.lid.k}, "
        f"{spec.lid_bins} query-LID bins.",
        f"{res.n_rows} result rows (one per index build and ef).",
    ]
    return Section("overview", "Overview", [Para(_describe_dataset(spec)), Bullets(grid)])


def _describe_dataset(spec: ExperimentSpec) -> str:
    d = spec.dataset.model_dump(mode="json")
    kind = d.get("kind")
    if kind == "synthetic":
        dims = d["intrinsic_dims"]
        return (
            f"Synthetic data: {len(dims)} random linear subspaces of intrinsic dimension "
            f"{', '.join(str(x) for x in dims)} in {d['ambient_dim']}-d, {d['points_per_subspace']:,} "
            f"points and {d['queries_per_subspace']:,} queries per subspace (noise {d['noise']}, "
            f"{'unit-normalised' if d['normalize'] else 'not normalised'}, seed {d['seed']}). "
            "Each subspace is a category."
        )
    if kind == "glove":
        return (
            f"GloVe 6B 50-d word vectors: {d['n']:,} base vectors and {d['queries']:,} held-out queries "
            f"(split seed {d['seed']})."
        )
    if kind == "text":
        limit = f"at most {d['limit']:,}" if d.get("limit") else "all"
        return (
            f"Text corpus '{d['corpus']}' ({limit} documents, {d['queries']:,} queries), embedded with "
            f"{', '.join(d['models'])}."
        )
    if kind == "file":
        if d.get("queries"):
            queries = f"queries from {d['queries']}"
        else:
            queries = f"{d['query_count']:,} queries split off with seed {d['seed']}"
        return f"User vectors from {d['path']}; {queries}."
    if kind == "beir":
        limit = f", at most {d['queries']:,} queries" if d.get("queries") else ""
        return f"BEIR-layout corpus at {d['path']}{limit}, embedded with {', '.join(d['models'])}."
    return f"Dataset: {json.dumps(d)}"
