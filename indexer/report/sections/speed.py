"""Build time, index size and queries per second."""

from __future__ import annotations

from indexer.model.results import DenseRow, RunExtras, SparseRow
from indexer.report import cells
from indexer.report.blocks import Block, Para, Section, Table
from indexer.report.cells import MISSING
from indexer.report.results import Results, with_col
from indexer.report.values import mean, num


def speed_section(res: Results, extras: RunExtras | None = None) -> Section | None:
    # the rows that build an index (a fusion builds none)
    built = [r for r in res.rows if isinstance(r, DenseRow | SparseRow)]
    if not built:
        return None
    multi = len(res.section_keys) > 0
    sections = res.sections(built)
    build = Table(
        (["results"] if multi else [])
        + ["backend", "build s", "build s (min–max)", "index MB", "bytes/vector"],
        [],
    )
    for label, srows in sections:
        for config in res.configs(srows):
            crows = [r for r in srows if res.config_of(r) == config]
            builds = [b for b in (num(r.build_seconds) for r in crows) if b is not None]
            span = f"{min(builds):.2f}–{max(builds):.2f}" if builds else MISSING
            if builds and f"{min(builds):.2f}" == f"{max(builds):.2f}":
                span = MISSING
            build.rows.append(
                ([label] if multi else [])
                + [
                    res.config_label(config),
                    cells.secs(mean(builds)),
                    span,
                    cells.megabytes(mean(r.index_bytes for r in crows)),
                    cells.count(mean(r.bytes_per_vector for r in crows)),
                ]
            )
    span_col = len(build.headers) - 4
    if all(line[span_col] == MISSING for line in build.rows):
        build.headers.pop(span_col)
        for line in build.rows:
            line.pop(span_col)
    blocks: list[Block] = [
        Para(
            "Build seconds and sizes averaged over orderings and seeds (the range shows how much the "
            "ordering and seed changed the build time); queries per second averaged the same way. "
            + _timing_note(extras)
        ),
        build,
    ]
    cols = res.columns(built)
    if any(num(r.qps) is not None for r in built):
        groups, subs = res.column_groups(cols)
        qps = Table(
            ["results"] + [res.col_label(c) for c in cols], [], groups=groups, sub_headers=subs,
            caption="Queries per second",
        )  # fmt: skip
        for label, srows in sections:
            qps.rows.append(
                [label] + [cells.compact(mean(r.qps for r in with_col(res, srows, c))) for c in cols]
            )
        blocks.append(qps)
    latency = _latency_table(res, [r for r in built if isinstance(r, DenseRow) and r.latency is not None])
    if latency is not None:
        blocks.append(latency)
    return Section("speed", "Build time, size and speed", blocks)


def _timing_note(extras: RunExtras | None) -> str:
    """What the timings mean: searches are timed alone; builds beside other builds when cells ran at once."""
    text = ("Each search is timed with nothing else of any run on the machine building or timing (a lock): "
            "QPS is the median of the timed passes.")
    prov = extras.provenance if extras is not None else None
    if prov is not None and prov.cells_at_once > 1:
        text += (f" Builds ran up to {prov.cells_at_once} at once ({prov.executor} executor, "
                 f"{prov.threads_per_cell} thread(s) per cell), so build seconds are contended: "
                 "for clean build times run with --workers 1.")
    if prov is not None:
        text += f" CPU: {prov.cpu}."
    return text


def _mean_or_dash(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return cells.compact(mean(known)) if known else "-"


def _latency_table(res: Results, rows: list[DenseRow]) -> Table | None:
    """Single-query latency percentiles per configuration and ef (one client, one query at a time)."""
    if not rows:
        return None
    clients = sorted({r.latency.clients for r in rows if r.latency is not None and r.latency.clients})
    many = f"qps, {'/'.join(map(str, clients))} clients" if clients else "qps, concurrent clients"
    table = Table(["backend", "ef", "p50 ms", "p95 ms", "p99 ms", "qps, 1 client", many], [],
                  caption="One query per call, from one client and from one client per core at once (threads of "
                          "one process, as the API serves requests); means over orderings and seeds")
    for config in res.configs(rows):
        crows = [r for r in rows if res.config_of(r) == config]
        for ef in sorted({r.ef for r in crows}, key=lambda e: -1 if e is None else e):
            at = [r.latency for r in crows if r.ef == ef and r.latency is not None]
            table.rows.append([res.config_label(config), "exact" if ef is None else str(ef),
                               f"{mean(x.p50_ms for x in at):.3f}", f"{mean(x.p95_ms for x in at):.3f}",
                               f"{mean(x.p99_ms for x in at):.3f}", cells.compact(mean(x.qps_one_client for x in at)),
                               _mean_or_dash([x.qps_clients for x in at])])
    return table
