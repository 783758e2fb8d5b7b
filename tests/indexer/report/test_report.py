"""Reports: files round-trip, the HTML stands alone, and a report directory is replaced atomically."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from indexer import report
from indexer.common.errors import UserError
from indexer.engine.spec import ExperimentSpec, parse_spec
from indexer.report import figures, render_html, render_markdown, rows_to_csv, write_report
from tests.indexer.report.rowkit import dense_row, sparse_row

ORDERINGS = ["random", "lid_asc", "lid_desc"]
CATEGORIES = ["subspace-0-dim2", "subspace-1-dim16"]


def make_spec(name: str = "order study") -> ExperimentSpec:
    return parse_spec(
        {
            "name": name,
            "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 16], "ambient_dim": 32},
            "orderings": ORDERINGS,
            "backends": [
                {"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [10, 40]},
                {"name": "exact"},
            ],
        }
    )


def make_rows(cache: Path, *, offset: float = 0.0) -> list[dict]:
    """Rows shaped like the engine's: one per (ordering, backend, ef), neighbours in per-cell dirs."""
    rng = np.random.default_rng(0)
    rows = []
    for i, ordering in enumerate(ORDERINGS):
        for backend, ef in (("hnswlib", 10), ("hnswlib", 40), ("exact", None)):
            cell_dir = cache / "cells" / f"cell{i}{backend}"
            cell_dir.mkdir(parents=True, exist_ok=True)
            tag = f"ef{ef}" if ef is not None else "exact"
            path = cell_dir / f"neighbors-{tag}.npy"  # same basename in every cell, as the engine does
            np.save(path, rng.integers(0, 1000, size=(20, 10)))
            recall = 1.0 if ef is None else round(0.70 + 0.05 * i + ef / 400 + offset, 4)
            rows.append(dense_row(
                ordering=ordering, backend=backend, ef=ef, cell=cell_dir.name, recall=recall,
                recall_ci95=[recall - 0.01, min(1.0, recall + 0.01)], neighbors=str(path),
                recall_by_category={
                    CATEGORIES[0]: {"recall": min(1.0, recall + 0.1), "n": 10},
                    CATEGORIES[1]: {"recall": recall - (0.2 if ordering == "lid_asc" and ef else 0.1), "n": 10},
                },
                recall_by_lid_bin=[
                    {"bin": b, "lo": 1.0 + 5 * b, "hi": 6.0 + 5 * b, "recall": recall - 0.05 * b, "n": 5}
                    for b in range(4)
                ],
            ))
    return rows


def _distribution(median: float, histogram: bool) -> dict:
    out = {"n": 45, "median": median, "mean": 8.3, "p10": 0.9, "p90": 18.8}
    return out | ({"histogram": {"edges": [0.0, 5.0, 10.0, 20.0], "counts": [10, 30, 5]}} if histogram else {})


# The run's extras as the engine writes them (indexer.model.results.RunExtras)
EXTRAS = {
    "space": {"none": {
        "lid_base": _distribution(5.4, True), "lid_queries": _distribution(5.5, False), "lid_global": 7.1,
        "isoscore": 0.17, "relative_contrast": _distribution(6.7, False), "dims": 32, "n": 1200,
        "reduction": {"name": "none", "dims": 32},
    }},
    "notes": ["hnswlib built with one thread"],
}  # fmt: skip


@pytest.fixture
def cheap_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of files and swaps need no plots: skip matplotlib to stay fast."""
    monkeypatch.setattr(figures, "render_svg", lambda draw, prefix: "<svg></svg>")


@pytest.fixture
def written(tmp_path: Path, cheap_figures: None) -> tuple[ExperimentSpec, list[dict], Path]:
    spec, rows = make_spec(), make_rows(tmp_path / "cache")
    out = write_report(spec, rows, tmp_path / "out", extras=EXTRAS)
    return spec, rows, out


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.endswith((".partial", ".old"))]


def test_rows_are_rounded_to_what_they_mean() -> None:
    row = {"recall": 0.123456789, "qps": 1234.5678, "build_seconds": 1.234567,
           "recall_by_category": {"a": {"recall": 2 / 3, "n": 3}}, "recall_ci95": [0.1111111, 0.2222222],
           "ef": 10, "ordering": "random"}
    assert report.round_row(row) == {
        "recall": 0.1235, "qps": 1234.6, "build_seconds": 1.2346,
        "recall_by_category": {"a": {"recall": 0.6667, "n": 3}}, "recall_ci95": [0.1111, 0.2222],
        "ef": 10, "ordering": "random",
    }


def test_json_round_trip_copies_neighbours(written: tuple[ExperimentSpec, list[dict], Path]) -> None:
    spec, rows, out = written
    doc = json.loads((out / "report.json").read_text())
    assert doc["key"] == spec.key()
    assert ExperimentSpec.model_validate(doc["spec"]) == spec
    assert doc["extras"] == EXTRAS
    assert len(doc["rows"]) == len(rows)
    relative = set()
    for got, want in zip(doc["rows"], rows, strict=True):
        assert {k: v for k, v in got.items() if k != "neighbors"} == {
            k: v for k, v in report.round_row(want).items() if k != "neighbors"
        }
        rel = got["neighbors"]
        assert rel.startswith("neighbors/") and not Path(rel).is_absolute()
        relative.add(rel)
        assert np.array_equal(np.load(out / rel), np.load(want["neighbors"]))
    assert len(relative) == len(rows)  # shared basenames did not overwrite each other


def test_csv_parses_back(written: tuple[ExperimentSpec, list[dict], Path]) -> None:
    _, rows, out = written
    parsed = list(csv.DictReader(io.StringIO((out / "report.csv").read_text())))
    assert len(parsed) == len(rows)
    header = next(csv.reader(io.StringIO((out / "report.csv").read_text())))
    assert header[:3] == ["dataset", "model", "metric"]  # main keys first
    for got, want in zip(parsed, (report.round_row(r) for r in rows), strict=True):
        assert got["ordering"] == want["ordering"]
        assert float(got["recall"]) == want["recall"]
        assert got["ef"] == ("" if want["ef"] is None else str(want["ef"]))
        assert got["model"] == ""
        assert json.loads(got["recall_by_category"]) == want["recall_by_category"]
        assert json.loads(got["recall_ci95"]) == want["recall_ci95"]
        assert got["neighbors"].startswith("neighbors/")


def test_rows_to_csv_handles_numpy_and_nan() -> None:
    text = rows_to_csv(
        [{"recall": np.float32(0.5), "ef": np.int64(10), "qps": float("nan"), "extra": (1, 2)}]
    )
    (line,) = list(csv.DictReader(io.StringIO(text)))
    assert line == {"recall": "0.5", "ef": "10", "qps": "", "extra": "[1,2]"}


def test_markdown_shows_every_recall(tmp_path: Path) -> None:
    spec, rows = make_spec(), make_rows(tmp_path)
    md = render_markdown(spec, rows, EXTRAS)
    assert spec.name in md and spec.key() in md
    for row in rows:
        assert f"{row['recall']:.3f}" in md
    assert "| ordering | hnswlib ef=10 | hnswlib ef=40 | exact |" in md
    # lid_desc is best in every graph column: bold there, and the spread is 10 points
    assert "**0.825**" in md and "| spread (pts) | 10.0 | 10.0 | – |" in md
    # the per-category gap names the category and the orderings
    assert "subspace-1-dim16" in md and "lid_desc" in md
    assert "Median pointwise LID: base 5.40, queries 5.50." in md


def test_markdown_index_size_crossing() -> None:
    spec = parse_spec(
        {
            "name": "dense vs sparse",
            "dataset": {"kind": "beir", "path": "/data/x"},
            "backends": [{"name": "exact"}],
            "representations": ["dense", "sparse"],
            "index_sizes": [1000, 10000, 100000],
        }
    )
    rows = []
    for size, dense, sparse in ((1000, 0.70, 0.60), (10000, 0.64, 0.61), (100000, 0.55, 0.60)):
        rows.append(dense_row(dataset="x", model="m", backend="exact", ef=None, index_size=size, recall=1.0,
                              **{"ndcg@10": dense, "mrr@10": dense, "recall@100": dense}))
        rows.append(sparse_row(index_size=size, **{"ndcg@10": sparse}))
    md = render_markdown(spec, rows, None)
    assert "sparse · bm25 overtakes m · dense · exact between 10,000 and 100,000 documents" in md
    assert "Quality vs index size" in md and "Retrieval quality" in md


def test_render_survives_measures_not_taken() -> None:
    """A measure not taken (None), empty breakdowns and a run with no rows render in every format."""
    spec = make_spec()
    rows = [
        dense_row(ordering="random", recall=None, recall_std=None, recall_ci95=[None, None], qps=float("nan")),
        dense_row(ordering="lid_asc", recall=0.5),
        dense_row(ordering="lid_asc", backend="exact", ef=None, recall=1.0),
    ]
    extras = {"space": {}, "notes": []}
    assert "0.500" in render_markdown(spec, rows, extras)
    page = render_html(spec, rows, extras)
    assert "0.500" in page and "could not be drawn" not in page
    assert rows_to_csv(rows).count("\n") == len(rows) + 1
    assert "Overview" in render_markdown(spec, [], None)


def test_a_row_of_no_known_shape_is_refused_by_name() -> None:
    """The report reads typed rows: a row the engine cannot have written fails at the boundary."""
    with pytest.raises(ValidationError, match="recall_ci95"):
        render_markdown(make_spec(), [dense_row(recall_ci95="wide")], None)


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    spec = make_spec("<script>alert('x')</script> & co")
    page = render_html(spec, make_rows(tmp_path), EXTRAS)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", page, re.I)
    assert page.count("<svg") >= 4  # recall vs ef, categories, LID bins, LID distribution
    assert "could not be drawn" not in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # inlined SVGs do not clash


@pytest.mark.usefixtures("cheap_figures")
def test_existing_report_is_replaced(tmp_path: Path) -> None:
    spec, out = make_spec(), tmp_path / "out"
    write_report(spec, make_rows(tmp_path / "c1"), out)
    rows = make_rows(tmp_path / "c2", offset=0.01)
    write_report(spec, rows, out)
    doc = json.loads((out / "report.json").read_text())
    assert [r["recall"] for r in doc["rows"]] == [r["recall"] for r in rows]
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in out.iterdir()) == [
        "neighbors", "report.csv", "report.html", "report.json", "report.md",
    ]  # fmt: skip


@pytest.mark.usefixtures("cheap_figures")
def test_failure_keeps_previous_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, out = make_spec(), tmp_path / "out"
    write_report(spec, make_rows(tmp_path / "c1"), out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(report.write, "render_html", broken)
    with pytest.raises(RuntimeError, match="renderer broke"):
        write_report(spec, make_rows(tmp_path / "c2", offset=0.01), out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert leftovers(tmp_path) == []


@pytest.mark.usefixtures("cheap_figures")
def test_refuses_a_directory_that_is_not_a_report(tmp_path: Path) -> None:
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="not a report directory"):
        write_report(make_spec(), make_rows(tmp_path / "c"), out)
    assert (out / "thesis.tex").read_text() == "precious"
    assert leftovers(tmp_path) == []

    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        write_report(make_spec(), [], tmp_path / "file")


@pytest.mark.usefixtures("cheap_figures")
def test_missing_neighbour_file_is_dropped_not_fatal(tmp_path: Path) -> None:
    rows = make_rows(tmp_path / "c")[:1]
    rows[0]["neighbors"] = str(tmp_path / "gone.npy")
    out = write_report(make_spec(), rows, tmp_path / "out")
    assert json.loads((out / "report.json").read_text())["rows"][0]["neighbors"] is None
