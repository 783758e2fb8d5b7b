"""Overview: the dataset in a sentence and the grid the experiment ran."""

from __future__ import annotations

from indexer.engine.spec import ExperimentSpec
from indexer.model.datasets import FileDataset, GloveDataset, SyntheticDataset, TextDataset
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
    d = spec.dataset
    if isinstance(d, SyntheticDataset):
        return (
            f"Synthetic data: {len(d.intrinsic_dims)} random linear subspaces of intrinsic dimension "
            f"{', '.join(str(x) for x in d.intrinsic_dims)} in {d.ambient_dim}-d, {d.points_per_subspace:,} "
            f"points and {d.queries_per_subspace:,} queries per subspace (noise {d.noise}, "
            f"{'unit-normalised' if d.normalize else 'not normalised'}, seed {d.seed}). "
            "Each subspace is a category."
        )
    if isinstance(d, GloveDataset):
        return (
            f"GloVe 6B 50-d word vectors: {d.n:,} base vectors and {d.queries:,} held-out queries "
            f"(split seed {d.seed})."
        )
    if isinstance(d, TextDataset):
        limit = f"at most {d.limit:,}" if d.limit else "all"
        return (
            f"Text corpus '{d.corpus}' ({limit} documents, {d.queries:,} queries), embedded with "
            f"{', '.join(d.models)}."
        )
    if isinstance(d, FileDataset):
        queries = f"queries from {d.queries}" if d.queries else f"{d.query_count:,} queries split off with seed {d.seed}"
        return f"User vectors from {d.path}; {queries}."
    limit = f", at most {d.queries:,} queries" if d.queries else ""
    return f"BEIR-layout corpus at {d.path}{limit}, embedded with {', '.join(d.models)}."
