"""What the pre-flight reports (indexer.science.preflight), as types only: the run's extras import them
without importing the checks (and faiss with them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

NEAR_FRACTION = 0.05  # a near-duplicate is closer than this share of the median nearest-neighbour distance
NEAR_DEPTH = 10  # neighbours of each sampled point looked at
TIE_RTOL = 1e-6  # a tie: the k-th and (k+1)-th scores differ by at most this share of the score scale


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VectorCheck(_Model):
    """One set of vectors (the base or the queries): zero rows and the spread of norms."""

    n: int
    zero: int  # rows that are all zeros
    not_unit: int  # non-zero rows whose norm differs from 1 by more than NORM_TOL
    norm_min: float | None = None
    norm_max: float | None = None


class Duplicates(_Model):
    """Groups of exactly equal base rows (value by value, so -0.0 equals 0.0)."""

    groups: int = 0
    rows: int = 0  # rows in those groups: each has at least one exact twin
    largest: int = 0
    example: list[int] = []  # ids of the largest group (at most EXAMPLES)


class NearDuplicates(_Model):
    """Base points with a neighbour closer than `threshold` (and not equal), on a seeded sample."""

    sample: int  # base points searched (all of them when the base has at most NEAR_SAMPLE)
    depth: int  # nearest neighbours looked at per sampled point
    fraction: float = NEAR_FRACTION
    typical_distance: float | None  # median Euclidean distance from a sampled point to its nearest unequal one
    threshold: float | None  # fraction x typical_distance
    points: int = 0  # sampled points with at least one near-duplicate
    pairs: int = 0
    groups: int = 0  # connected groups formed by those pairs
    largest: int = 0
    example: list[int] = []  # ids of the largest group found (at most EXAMPLES)


class KthTies(_Model):
    """Queries whose k-th and (k+1)-th exact scores tie: the true top k is not unique."""

    sample: int  # queries searched at depth k + 1 (all of them when there are at most TIE_SAMPLE)
    tied: int = 0


class GroundTruthCheck(_Model):
    """A seeded sample of queries re-searched by float64 brute force against the stored ground truth."""

    sample: int
    mismatches: int = 0
    example: list[int] = []  # query numbers that disagree (at most EXAMPLES)


class Preflight(_Model):
    """What the pre-flight found in one space (its base and queries) before any index was built."""

    metric: str
    k: int
    base: VectorCheck
    queries: VectorCheck
    duplicates: Duplicates
    near_duplicates: NearDuplicates
    queries_in_base: int  # queries equal to some base row
    ties: KthTies  # against the ground truth recall is measured with
    groundtruth: GroundTruthCheck  # the ground truth recall is measured against
    groundtruth_within: GroundTruthCheck | None = None  # a reduced space's own ground truth
    warnings: list[str] = []
    seconds: float = 0.0
