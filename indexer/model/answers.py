"""What a built cell saves, from which every measure of its rows is computed without building it again.

A cell's directory (cells/<build key>/) holds the index, the answers to its ef sweep (the returned ids
per ef, and a depth-100 ranking where relevance judgements exist), and `answers.json`: the build's own
figures and each ef's timings. The probes (cost at each recall target, the diagnostics) need the live
index, so they are kept beside under their own key (probes/<key>.json), and re-run on the saved index
when that key changes. Rows (recall in its definitions, breakdowns) are measured from both
(indexer.engine.measure) into measures/<key>/.
"""

from __future__ import annotations

from indexer.model.results import (
    CostAtRecall,
    GraphDiagnostics,
    GroupDiagnostics,
    Latency,
    Measure,
    ResultModel,
)


class SweepAnswer(ResultModel):
    """One ef of the sweep: its timed passes and the files of what it returned (names in the cell directory)."""

    ef: int | None  # None: exact search
    pass_seconds: list[float]  # each timed pass over the whole query set
    latency: Latency | None
    neighbors: str  # ids, queries x k (-1: no answer)
    ranking: str | None = None  # ids at depth 100 (datasets with relevance judgements)


class CellAnswers(ResultModel):
    """A built cell's figures and its sweep; written last, it marks the cell as built."""

    build_seconds: float
    index_bytes: int
    search_threads: int
    library_version: str
    sweep: list[SweepAnswer]


class EfDiagnostics(ResultModel):
    """The self-miss at one ef, overall and broken down (indexer.engine.diagnostics)."""

    ef: int | None
    self_miss: Measure
    self_miss_sampled: int | None
    by_category: list[GroupDiagnostics]
    by_lid_bin: list[GroupDiagnostics]


class FilteredAnswer(ResultModel):
    """A cell's filtered search at one (mode, workload, selectivity, ef): its time, the library's count of
    its distance computations, and the file of its ids."""

    filter: str
    selectivity: float | None  # None: a label filter
    ef: int | None
    seconds: float  # one pass over every query, each group of queries sharing a filter searched together
    neighbors: str  # file name beside the probes
    filter_mode: str | None = None  # the backend's filter mode (Capabilities.filter_modes); None: it has one way
    # mean distance computations per query in an untimed pass of one thread, where the library counts them
    # (indexer.engine.diagnostics.CountsDistances); None where it does not
    distances_per_query: float | None = None


class FilteredCost(ResultModel):
    """Cost at equal recall under one filter (workload, selectivity), in one filter mode."""

    filter: str
    selectivity: float | None
    cost_at_recall: list[CostAtRecall]
    filter_mode: str | None = None  # as FilteredAnswer's


class StoredAnswer(ResultModel):
    """Exact search over what a quantized index stores (its vectors decoded, base.StoresVectors), the k best per
    query: the representation's own exact kNN, against which the graph's loss is told from the representation's."""

    neighbors: str  # ids, queries x k, in the dataset's numbering: file name beside the probes
    seconds: float  # decoding the stored vectors and searching them exactly


class UnrescoredAnswer(ResultModel):
    """A rescored index searched at one ef of its sweep with rescoring off (base.Rescores): its own k best."""

    ef: int | None
    neighbors: str  # ids, queries x k, in the dataset's numbering: file name beside the probes


class EfLadderAnswer(ResultModel):
    """Each query searched at each rung of an ef ladder (indexer.science.ef_ladder) until it reaches recall 1.0:
    from these ids the smallest ef each query needs is measured again at any time."""

    efs: list[int]  # the ladder: k, 2k, 4k, ... then its cap
    cap: int  # the last rung: min(EF_LADDER_CAP, index size, the backend's largest ef), at least k
    # ids, rungs x queries x k, in the dataset's numbering (-1: not searched at that rung, as the query had
    # reached 1.0 below it): file name beside the probes
    neighbors: str
    seconds: float  # every rung's search


class CellProbes(ResultModel):
    """What was measured on the live index: cost at each recall target and, when asked, the diagnostics."""

    cost_at_recall: list[CostAtRecall]
    graph: GraphDiagnostics | None = None
    diagnostics: list[EfDiagnostics] | None = None  # None: the spec asked for no diagnostics
    filtered: list[FilteredAnswer] = []  # the spec's filter workloads (indexer.engine.filtering)
    filtered_cost: list[FilteredCost] = []  # the ef each filter needs to reach each recall target
    # a quantized index's exact search over its stored vectors; None: it stores float32 of its space, whose
    # exact kNN is the space's own (Space.within_ids)
    stored: StoredAnswer | None = None
    # a rescored index's answers at each ef of its sweep with rescoring off; empty: nothing is re-ranked
    unrescored: list[UnrescoredAnswer] = []
    ef_ladder: EfLadderAnswer | None = None  # None: a backend without ef

    def at(self, ef: int | None) -> EfDiagnostics | None:
        return next((d for d in self.diagnostics or [] if d.ef == ef), None)

    def unrescored_at(self, ef: int | None) -> UnrescoredAnswer | None:
        return next((u for u in self.unrescored if u.ef == ef), None)
