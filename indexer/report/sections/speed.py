"""Build time, index size and queries per second."""

from __future__ import annotations

from indexer.engine.results import DenseRow, SparseRow
from indexer.report import cells
from indexer.report.blocks import Block, Para, Section, Table
from indexer.report.cells import MISSING
from indexer.report.results import Results, with_col
from indexer.report.values import mean, num


def speed_section(res: Results) -> Section | None:
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
            "ordering and seed changed the build time); queries per second averaged the same way."
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
    return Section("speed", "Build time, size and speed", blocks)
