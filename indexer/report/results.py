"""The results grouped the way the report reads them: the spec's order first, then whatever the rows add.

The report reads typed rows (indexer.model.results): a DenseRow per ANN cell and ef, a SparseRow per BM25
index, a HybridRow per fusion. Grouping keys are the fields every kind of row has (GroupKey).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from indexer.backends import BACKENDS, build_param_names
from indexer.engine.spec import ExperimentSpec
from indexer.model.results import DenseRow, HybridRow, ResultModel, RunExtras, SparseRow, parse_rows
from indexer.report.cells import MISSING
from indexer.report.values import num, sortable

Row = DenseRow | SparseRow | HybridRow
R = TypeVar("R", bound=Row)
# Fields every kind of row has, by which rows are grouped, split and ordered.
GroupKey = Literal["dataset", "model", "reduction", "dims", "representation", "index_size", "ordering",
                   "backend", "ef", "seed"]
# The measures against relevance judgements: the report's column name, and the row field holding it.
IR_FIELDS = {"ndcg@10": "ndcg_at_10", "mrr@10": "mrr_at_10", "recall@100": "recall_at_100"}

# What splits the recall tables into sub-tables when it takes more than one value.
SECTION_KEYS: tuple[GroupKey, ...] = ("dataset", "model", "reduction", "representation", "index_size")

# Every registered backend's build parameters (M, ef_construction, ...): a backend without one of them has
# None there. Read from the registry, so a new backend needs no edit here.
BUILD_PARAMS: tuple[str, ...] = tuple(build_param_names())
ConfigKey = tuple[Any, ...]  # backend, then the value of each of BUILD_PARAMS
ColKey = tuple[Any, ...]  # a ConfigKey, then ef
UNCONTROLLED_MARK = "*"  # after the label of a backend that did not insert in the given order


def typed_rows(rows: Sequence[ResultModel | Mapping[str, Any]]) -> list[Row]:
    """Rows as the report reads them: typed rows as they are, JSON ones (a report.json's) parsed."""
    return [r if isinstance(r, DenseRow | SparseRow | HybridRow) else parse_rows([dict(r)])[0] for r in rows]


def typed_extras(extras: RunExtras | Mapping[str, Any] | None) -> RunExtras:
    """The run's extras as the report reads them (none: empty)."""
    if isinstance(extras, RunExtras):
        return extras
    return RunExtras.model_validate(extras or {})


def value_of(row: Row, key: GroupKey) -> Any:
    """A grouping field of any kind of row."""
    return getattr(row, key)


def measure(row: Row, name: str) -> float | None:
    """Recall against exact kNN, or an IR measure by its column name (None where the row took none)."""
    if name == "recall":
        return num(row.recall)
    return num(getattr(row, IR_FIELDS[name])) if row.judged else None


class Results:
    """Rows plus the orders and labels that the spec implies (spec order first, then what rows add)."""

    def __init__(self, spec: ExperimentSpec, rows: Sequence[Row]) -> None:
        self.spec = spec
        self.n_rows = len(rows)
        self.k = spec.k
        self.preferred: dict[str, list[Any]] = {
            "model": list(spec.models()),
            "reduction": [r.label for r in spec.reductions],
            "representation": list(spec.representations),
            "ordering": list(spec.orderings),
            "backend": list(dict.fromkeys(b.name for b in spec.backends)),
        }
        # A row with no insertion order (BM25) is shown beside every ordering of the others.
        ordered_rows = [r for r in rows if r.ordering is not None]
        self.orderings: list[str] = self.ordered("ordering", self.distinct("ordering", ordered_rows))
        self.rows: list[Row] = []
        for r in rows:
            if r.ordering is None:
                self.rows += [r.model_copy(update={"ordering": o}) for o in self.orderings] or [r]
            else:
                self.rows.append(r)
        self.dense: list[DenseRow] = [r for r in self.rows if isinstance(r, DenseRow)]
        # backends whose library chose its own insertion order: shown, but out of ordering comparisons
        self.uncontrolled = {r.backend for r in self.dense if not r.order_controlled}
        self.section_keys = [k for k in SECTION_KEYS if len(self.distinct(k)) > 1]
        # the preset each configuration's values came from, as its rows say (a configuration is one build)
        self._presets: dict[ConfigKey, str] = {
            self.config_of(r): r.preset for r in self.rows if isinstance(r, DenseRow | HybridRow) and r.preset}
        self.multi_seed = len([s for s in self.distinct("seed") if s is not None]) > 1
        configs: dict[str, set[tuple[Any, ...]]] = {}
        for r in self.rows:
            configs.setdefault(r.backend, set()).add(self.config_of(r)[1:])
        self._ambiguous = {name for name, cs in configs.items() if len(cs) > 1}

    def distinct(self, key: GroupKey, rows: Iterable[Row] | None = None) -> list[Any]:
        return list(dict.fromkeys(value_of(r, key) for r in (self.rows if rows is None else rows)))

    def rank(self, key: str, value: Any) -> tuple[Any, ...]:
        preferred = self.preferred.get(key, [])
        if value in preferred:
            return (0, preferred.index(value), (0, 0.0, ""))
        return (1, 0, sortable(value))

    def ordered(self, key: str, values: Iterable[Any]) -> list[Any]:
        return sorted(values, key=lambda v: self.rank(key, v))

    def group(self, rows: Iterable[R], keys: Sequence[GroupKey]) -> list[tuple[tuple[Any, ...], list[R]]]:
        groups: dict[tuple[Any, ...], list[R]] = {}
        for r in rows:
            groups.setdefault(tuple(value_of(r, k) for k in keys), []).append(r)
        order = sorted(groups, key=lambda t: tuple(self.rank(k, v) for k, v in zip(keys, t, strict=True)))
        return [(t, groups[t]) for t in order]

    def sections(self, rows: Iterable[R], keys: Sequence[GroupKey] | None = None) -> list[tuple[str, list[R]]]:
        """Rows split by the section keys (what takes several values), each part with its label."""
        keys = self.section_keys if keys is None else keys
        return [(section_label(keys, t), rs) for t, rs in self.group(rows, keys)]

    @staticmethod
    def config_of(row: Row) -> ConfigKey:
        return (row.backend, *(row.build_params.get(p) for p in BUILD_PARAMS))

    @staticmethod
    def col_of(row: Row) -> ColKey:
        return (*Results.config_of(row), row.ef)

    def config_label(self, config: ConfigKey) -> str:
        """The backend's name and its preset (`hnswlib preset=pgvector`); with its build parameters when the
        rows hold several builds of it."""
        name, *values = config
        label = str(name) if name is not None else "backend?"
        if config in self._presets:
            label += f" preset={self._presets[config]}"
        if name in self._ambiguous:
            params = params_label(name, values)
            label += f" {params}" if params else ""
        if name in self.uncontrolled and len(self.orderings) > 1:
            label += UNCONTROLLED_MARK
        return label

    def col_label(self, col: ColKey) -> str:
        label = self.config_label(config_of_col(col))
        ef = ef_of_col(col)
        return label if ef is None else f"{label} ef={ef}"

    def _config_rank(self, config: ConfigKey) -> tuple[Any, ...]:
        return (self.rank("backend", config[0]), *(sortable(v) for v in config[1:]))

    def columns(self, rows: Iterable[Row]) -> list[ColKey]:
        cols = dict.fromkeys(self.col_of(r) for r in rows)
        return sorted(cols, key=lambda c: (self._config_rank(config_of_col(c)), ef_of_col(c) is not None,
                                           sortable(ef_of_col(c))))

    def column_groups(self, cols: Sequence[ColKey]) -> tuple[list[tuple[str, int]], list[str]]:
        """Group header cells for HTML tables: one per backend config, `ef=…` under it."""
        groups: list[tuple[str, int]] = []
        subs: list[str] = []
        for config, members in itertools.groupby(cols, key=config_of_col):
            ms = list(members)
            groups.append((self.config_label(config), len(ms)))
            single = len(ms) == 1 and ef_of_col(ms[0]) is None
            subs += ["" if single else (f"ef={ef_of_col(c)}" if ef_of_col(c) is not None else MISSING) for c in ms]
        return groups, subs

    def configs(self, rows: Iterable[Row]) -> list[ConfigKey]:
        return sorted(dict.fromkeys(self.config_of(r) for r in rows), key=self._config_rank)

    def picked_columns(self, rows: Sequence[Row], *, highest: bool) -> list[ColKey]:
        """One column per backend config: its lowest (or highest) ef; backends without ef as they are."""
        picked = []
        for config in self.configs(rows):
            cols = [c for c in self.columns(rows) if config_of_col(c) == config]
            with_ef = [c for c in cols if num(ef_of_col(c)) is not None]
            if with_ef:
                picked.append(max(with_ef, key=ef_of_col) if highest else min(with_ef, key=ef_of_col))
            else:
                picked.append(cols[0])
        return picked


def config_of_col(col: ColKey) -> ConfigKey:
    """The backend configuration a column belongs to: the column without its ef."""
    return col[:-1]


def ef_of_col(col: ColKey) -> Any:
    return col[-1]


def params_label(backend: Any, values: Sequence[Any]) -> str:
    """Build parameter values (in BUILD_PARAMS order) as the backend labels them: hnswlib `M=16 efC=200`."""
    given = dict(zip(BUILD_PARAMS, values, strict=True))
    declared = BACKENDS.get(backend) if isinstance(backend, str) else None
    if declared is None:  # a backend the registry does not hold: every parameter it has a value for
        return " ".join(f"{k}={v}" for k, v in given.items() if v is not None)
    model = declared.params  # unvalidated: a row's values are shown as they are, None included
    return model.model_construct(**{f: given.get(f) for f in model.model_fields}).label()


def section_label(keys: Sequence[GroupKey], values: Sequence[Any]) -> str:
    """A readable name for a group: 'model X · reduction fft-low-64 · sparse'."""
    parts = []
    for key, value in zip(keys, values, strict=True):
        if value is None:
            parts.append(f"{key.replace('_', ' ')} {MISSING}")
        elif key == "model":
            parts.append(f"model {value}")
        elif key == "reduction":
            parts.append("no reduction" if value == "none" else f"reduction {value}")
        elif key == "index_size":
            n = num(value)
            parts.append(f"index size {n:,.0f}" if n is not None else f"index size {value}")
        else:
            parts.append(str(value))
    return " · ".join(parts) or "all results"


def by(rows: Iterable[R], key: GroupKey, value: Any) -> list[R]:
    return [r for r in rows if value_of(r, key) == value]


def with_col(res: Results, rows: Iterable[R], col: ColKey) -> list[R]:
    return [r for r in rows if res.col_of(r) == col]


def trivially_exact(rows: Sequence[Row]) -> bool:
    """Exact search scored against itself is 1.0 everywhere: nothing to plot or break down."""
    recalls = [num(r.recall) for r in rows]
    return (
        bool(rows)
        and all(r.backend == "exact" for r in rows)
        and all(x is not None and x >= 0.9995 for x in recalls)
    )


def ordering_matters(res: Results, col: ColKey) -> bool:
    """Whether a column's rows can be compared across orderings: exact search and BM25 (no ef) return the
    same whatever the order, and a system that chose its own order (not order-controlled) never saw ours."""
    if len(res.orderings) < 2:
        return True
    return ef_of_col(col) is not None and config_of_col(col)[0] not in res.uncontrolled
