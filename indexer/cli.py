"""Command line: `indexer run SPEC --out DIR`, `indexer advise`, `indexer export`, `indexer compare`,
`indexer worker`, `indexer serve`, `indexer --version`.

Bad input, including a bad command line, ends with exit code 2 and one line `error: ...` on stderr,
never a traceback; nothing half-written is left behind (cells and reports are renamed into place
only when complete).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from indexer.backends import require_all
from indexer.common.errors import UserError
from indexer.common.logs import quiet_library_loggers
from indexer.engine.admission import admit, describe_estimate
from indexer.engine.executors import cores, executor_config
from indexer.engine.spec import ExperimentSpec, load_spec, parse_spec
from indexer.model.results import Candidate
from indexer.settings import get_settings

if TYPE_CHECKING:
    from indexer.engine.runner import RunResult

HELP = (
    "Measure how well approximate vector search (HNSW) finds the true nearest neighbours, "
    "across insertion orders, dimensionality reductions and representations."
)


def one_line(message: str) -> str:
    """A message folded onto one line, so stderr carries exactly one line per error."""
    return re.sub(r"\s*[\r\n]+\s*", " ", message).strip()


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code)


_REQUIRED_ARGUMENT = re.compile(r"^\{(?P<name>[^{}]+)\}(?P<more>(?:\.\.\.)?)$")


def _readable(params: list[Any], pieces: list[str]) -> list[str]:
    """Help that reads as a command's usually does: a flag has no `<bool>` beside it (typer shows every
    option's type; a flag takes no value), and a required argument is `SPEC` in the usage line, not `{SPEC}`
    (click's convention; an optional one stays `[RUN]`). Returns the usage pieces."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""  # typer shows the metavar, when set, in place of the type
    return [_REQUIRED_ARGUMENT.sub(r"\g<name>\g<more>", piece) for piece in pieces]


class _ReadableHelp(TyperCommand):
    """Every command's help without `<bool>` on flags and with `SPEC` for a required argument (_readable)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _readable(self.get_params(ctx), super().collect_usage_pieces(ctx))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _readable(self.get_params(ctx), [])
        super().format_help(ctx, formatter)


class _OneLineErrors(TyperGroup):
    """Usage mistakes (a missing option, an unknown command) also end on one `error:` line, exit 2."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _readable(self.get_params(ctx), [])  # `--version` and `--help` without `<bool>`
        super().format_help(ctx, formatter)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False  # errors come back to us instead of being printed as a box
        try:
            code = super().main(*args, **kwargs)
        except typer.TyperException as err:  # click's usage errors (typer carries its own click)
            ctx = getattr(err, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            typer.echo(f"error: {one_line(err.format_message())}{hint}", err=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


@contextlib.contextmanager
def _one_line_errors(debug: bool) -> Iterator[None]:
    """A user error exits 2 and an unexpected one 1, each on one `error:` line (with --debug: the traceback)."""
    try:
        yield
    except UserError as err:  # SpecError among them
        _fail(str(err))
    except KeyboardInterrupt:
        _fail("interrupted; finished cells are cached, no report was written", code=130)
    except typer.Exit:
        raise
    except Exception as err:
        if debug:
            raise
        _fail(f"{type(err).__name__}: {err}", code=1)


app = typer.Typer(
    cls=_OneLineErrors, add_completion=False, invoke_without_command=True, help=HELP, pretty_exceptions_enable=False
)


def _version() -> str:
    try:
        return importlib.metadata.version("indexer")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"indexer {_version()}")
        raise typer.Exit(0)


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    if ctx.invoked_subcommand is None:  # bare `indexer`: the help, and the exit code of a usage mistake
        text = ctx.get_help()  # rich prints the help itself and returns ""
        if text:
            typer.echo(text)
        raise typer.Exit(2)


def _finite(value: float | None) -> float | None:
    """Every float option's check: click reads `inf` and `nan` as floats, and no recall, budget or interval
    means anything at them (a usage error: exit 2, one line)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value


CacheDir = Annotated[Path | None, typer.Option(help="where ground truth, LID and finished cells are kept for reruns")]
Out = Annotated[Path, typer.Option("--out", help="report directory; replaced only once the report is complete")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar and no summary line")]
Debug = Annotated[bool, typer.Option(help="debug logging, and a traceback for an unexpected failure")]
NoLimits = Annotated[bool, typer.Option("--no-limits", help="run a spec larger than the INDEXER_MAX_* limits allow")]
SpecPath = Annotated[Path, typer.Argument(metavar="SPEC", help="experiment spec (YAML or JSON)")]
ExecutorOption = Annotated[str | None, typer.Option(
    "--executor", help="where cells run: local (processes on this machine) or ray (INDEXER_RAY_ADDRESS, or a "
    "Ray started for the run); default INDEXER_EXECUTOR, else local")]
Workers = Annotated[int | None, typer.Option(
    "--workers", min=1, help="cells at once (each gets cores/N threads); default INDEXER_WORKERS, else every core")]
Fresh = Annotated[bool, typer.Option(
    "--fresh", help="rerun every cell; cached inputs (embeddings, ground truth, LID) are kept")]
DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="validate and admit the spec, print its estimated size and work, and run nothing")]


@app.command(cls=_ReadableHelp)
def run(spec_path: SpecPath, out: Out, cache_dir: CacheDir = None, quiet: Quiet = False, debug: Debug = False,
        no_limits: NoLimits = False,
        save_indexes: Annotated[bool, typer.Option(
            "--save-indexes", help="hard-link (or copy) each built index into OUT/indexes/ and name it in its rows")] = False,
        executor: ExecutorOption = None, workers: Workers = None, fresh: Fresh = False, dry_run: DryRun = False,
        ) -> None:
    """Run an experiment and write report.{json,csv,md,html} to OUT."""
    result = _run_spec(lambda: load_spec(spec_path), out, cache_dir, quiet=quiet, debug=debug, no_limits=no_limits,
                       save_indexes=save_indexes, executor=executor, workers=workers, fresh=fresh, dry_run=dry_run)
    if result is not None and not quiet:
        typer.echo(f"report: {out / 'report.html'} ({len(result.rows)} rows, key {result.spec.key()})")


@app.command(cls=_ReadableHelp)
def advise(
    spec_path: SpecPath, out: Out,
    target_recall: Annotated[float, typer.Option(
        callback=_finite, help="the recall@k the configuration must reach")] = 0.95,
    m: Annotated[str | None, typer.Option("--m", help="M values to try, e.g. 8,16,32")] = None,
    ef_construction: Annotated[str | None, typer.Option(help="ef_construction values, e.g. 64,128,256")] = None,
    budget_minutes: Annotated[float | None, typer.Option(
        callback=_finite,
        help="stop building new configurations after this long (cheapest first) and advise over those built")] = None,
    cache_dir: CacheDir = None, quiet: Quiet = False, debug: Debug = False, no_limits: NoLimits = False,
    executor: ExecutorOption = None, workers: Workers = None, fresh: Fresh = False, dry_run: DryRun = False,
) -> None:
    """Find the cheapest HNSW configuration of SPEC reaching a target recall.

    Builds every HNSW backend of SPEC over a grid of M x ef_construction (and its orderings), and prints the
    cheapest configuration reaching TARGET_RECALL by query time, build time and memory (the ef is chosen on
    half the queries and confirmed on the other half). The report in OUT holds the whole grid."""

    def spec_with_advice() -> ExperimentSpec:
        data = load_spec(spec_path).model_dump(mode="json")
        data["advise"] = {"target_recall": target_recall, "budget_minutes": budget_minutes,
                          **({"M": _numbers(m, "--m")} if m else {}),
                          **({"ef_construction": _numbers(ef_construction, "--ef-construction")}
                             if ef_construction else {})}
        return parse_spec(data)

    result = _run_spec(spec_with_advice, out, cache_dir, quiet=quiet, debug=debug, no_limits=no_limits,
                       executor=executor, workers=workers, fresh=fresh, dry_run=dry_run)
    if result is None:
        return
    advice = result.extras.advice
    assert advice is not None
    typer.echo(f"tried {advice.tried} configurations; {advice.reached} reach recall {advice.target_recall:g}"
               + (f"; {advice.not_built} not built within the budget" if advice.not_built else ""))
    for what, pick in (("fastest queries", advice.fastest_queries), ("fastest build", advice.fastest_build),
                       ("smallest index", advice.smallest)):
        typer.echo(f"{what}: {_describe(pick)}")
    if not quiet:
        typer.echo(f"report: {out / 'report.html'}")


def _numbers(text: str, option: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option} takes whole numbers separated by commas, got {text!r}") from None


def _describe(pick: Candidate | None) -> str:
    if pick is None:
        return "none reaches the target"
    params = " ".join(f"{k}={v}" for k, v in pick.build_params.items())
    confirmed = "" if pick.confirmed else " (NOT confirmed on the held-out queries)"
    return (f"{pick.backend} {params} ordering={pick.ordering} ef={pick.ef}: held-out recall "
            f"{pick.held_out_recall:.3f}, {pick.qps:,.0f} qps, build {pick.build_seconds:.1f} s, "
            f"{pick.index_bytes / 1e6:,.1f} MB{confirmed}")


@contextlib.contextmanager
def _library_bars_off() -> Iterator[None]:
    """No library draws its own bar during a run (sentence-transformers' tqdm `Batches`): under ours it would
    share our line and leave its own unterminated, and with --quiet there should be none. tqdm and
    huggingface_hub read these once, at import, in this process and in the cells' processes started now."""
    from indexer.service.job_child import CHILD_ENV  # the worker's children turn the same bars off

    saved = {name: os.environ.get(name) for name in CHILD_ENV}
    os.environ.update({name: saved[name] or value for name, value in CHILD_ENV.items()})  # a user's own wins
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_spec(read_spec: Callable[[], ExperimentSpec], out: Path, cache_dir: Path | None, *, quiet: bool,
              debug: bool, no_limits: bool, save_indexes: bool = False, executor: str | None = None,
              workers: int | None = None, fresh: bool = False, dry_run: bool = False) -> RunResult | None:
    """The one path of `run` and `advise`: read and admit the spec, run it with a progress bar, write the
    report; every user error ends on one line. A dry run stops after admission, printing the estimate."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from indexer.pipeline import run_and_report

    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with _one_line_errors(debug):
        spec = read_spec()
        settings = get_settings()
        est = admit(spec, None if no_limits else settings.limits())  # before any work: one line naming the limit
        if dry_run:
            typer.echo(describe_estimate(est, cores()))
            return None
        require_all(entry.name for entry in spec.backends)  # every missing package at once, before the bar
        cache = cache_dir or settings.cache_dir
        cells_on = executor_config(executor or settings.executor, workers if workers is not None else settings.workers,
                                   settings.ray_address)
        # Leaving the bar's `with` stops it, which ends its line, before _one_line_errors prints `error: ...`
        with _library_bars_off(), Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(), disable=quiet, transient=False,
        ) as bar:
            task = bar.add_task(spec.name, total=1.0)
            return run_and_report(
                spec, cache_dir=cache, out_dir=out, save_indexes=save_indexes, executor=cells_on, fresh=fresh,
                progress=lambda f, msg: bar.update(task, completed=f, description=f"{spec.name}: {msg}"),
            )


@app.command(cls=_ReadableHelp)
def compare(
    run_a: Annotated[Path, typer.Argument(metavar="RUN_A", help="report directory of the baseline run")],
    run_b: Annotated[Path, typer.Argument(metavar="RUN_B", help="report directory of the run compared with it")],
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
    fail_if_worse: Annotated[bool, typer.Option(
        "--fail-if-worse", help="exit 1 when any matched cell's recall is significantly worse in RUN_B")] = False,
    min_recall_drop: Annotated[float, typer.Option(
        min=0.0, max=1.0, callback=_finite,
        help="count a cell as worse only when its mean recall drops by at least this much "
        "(and significantly)")] = 0.0,
    resamples: Annotated[int, typer.Option(min=100, max=100_000, help="bootstrap resamples of the queries")] = 2000,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="seed of the bootstrap")] = 0,
    debug: Debug = False,
) -> None:
    """Compare two runs cell by cell: recall per query (B - A with a 95% bootstrap interval) and QPS.

    Cells match on dataset, model, metric, k, index size, reduction, ordering, backend, build parameters, ef
    and seed. Exit 0, or 1 with --fail-if-worse when a cell's recall is significantly worse in RUN_B (or on an
    unexpected failure); 2 when the directories are not reports or cannot be compared."""
    from indexer.report.compare import compare_runs, format_comparison, read_report_dir

    with _one_line_errors(debug):
        comparison = compare_runs(read_report_dir(run_a), read_report_dir(run_b), resamples=resamples, seed=seed,
                                  min_recall_drop=min_recall_drop)
    typer.echo(comparison.model_dump_json(indent=1) if as_json else format_comparison(comparison))
    if fail_if_worse and comparison.worse:
        raise typer.Exit(1)


@app.command(cls=_ReadableHelp)
def worker(
    once: Annotated[bool, typer.Option(help="run at most one job, then exit")] = False,
    poll_seconds: Annotated[float, typer.Option(callback=_finite, help="how often to look for a job")] = 1.0,
) -> None:
    """Run the experiment jobs submitted to the API, one after another, until stopped."""
    from indexer.service.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    raise typer.Exit(run_worker(
        settings, once=once, poll_seconds=poll_seconds,
        cancel_poll_seconds=settings.job_cancel_poll_seconds,
        cancel_grace_seconds=settings.job_cancel_grace_seconds,
        kill_grace_seconds=settings.job_kill_grace_seconds,
        shutdown_grace_seconds=settings.job_shutdown_grace_seconds,
    ))


@app.command(cls=_ReadableHelp)
def export(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="report directory written by `indexer run --out`")],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="directory to create (or an empty one)")],
    fmt: Annotated[str, typer.Option(
        "--format", help="annb: ann-benchmarks' HDF5 files for their plot.py; parquet: one line per row and query")],
    cache_dir: Annotated[Path | None, typer.Option(
        help="the cache `indexer run` used (annb reads the run's vectors there)")] = None,
    debug: Debug = False,
) -> None:
    """Export RUN's dense rows into OUT as ann-benchmarks result files or a per-query Parquet table."""
    from indexer.report.export import export_run

    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with _one_line_errors(debug):
        done = export_run(run_dir, fmt, out, cache_dir=cache_dir or get_settings().cache_dir)
    skipped = f"; {done.skipped} sparse and hybrid rows left out" if done.skipped else ""
    typer.echo(f"exported {done.rows} rows into {out}: {done.files} files, {done.bytes / 1e6:,.1f} MB{skipped}")
    for line in done.notes:
        typer.echo(line)


@app.command(cls=_ReadableHelp)
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Serve the HTTP API: submit experiments, follow jobs, read results."""
    import uvicorn

    from indexer.settings import ServerLimits

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_library_loggers()  # faiss's loader logs "Could not load library with AVX512 support" at start
    # one process: scale with replicas; searches run concurrently in the server's thread pool.
    # Keep-alive timeout and connection limit (INDEXER_KEEP_ALIVE_SECONDS, INDEXER_MAX_CONNECTIONS); the
    # protocol bounds each request head in time and size (INDEXER_HEADER_TIMEOUT_SECONDS) and answers 503 in
    # JSON. Both named as strings: the engine never imports app
    uvicorn.run("app.main:app", host=host, port=port, log_level="info", http="app.http_protocol:HttpProtocol",
                **ServerLimits().uvicorn_options())


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
