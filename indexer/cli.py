"""Command line: `indexer run SPEC --out DIR`, `indexer worker`, `indexer serve`.

Bad input ends with exit code 2 and one line on stderr saying what is wrong; nothing half-written is
left behind (cells and reports are renamed into place only when complete).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from indexer.errors import UserError
from indexer.settings import get_settings
from indexer.spec import SpecError, load_spec

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def run(
    spec_path: Annotated[Path, typer.Argument(help="experiment spec (YAML or JSON)")],
    out: Annotated[Path, typer.Option("--out", help="report directory (replaced atomically)")],
    cache_dir: Annotated[Path | None, typer.Option(help="cache for ground truth, LID, built cells")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """Run an experiment and write report.{json,csv,md,html} to OUT."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from indexer.runner import run_and_report

    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        spec = load_spec(spec_path)
        cache = cache_dir or get_settings().cache_dir
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(), disable=quiet, transient=False,
        ) as bar:
            task = bar.add_task(spec.name, total=1.0)
            result = run_and_report(
                spec, cache_dir=cache, out_dir=out,
                progress=lambda f, msg: bar.update(task, completed=f, description=f"{spec.name}: {msg}"),
            )
    except (SpecError, UserError) as err:
        _fail(str(err))
    except KeyboardInterrupt:
        _fail("interrupted; finished cells are cached, no report was written", code=130)
    except Exception as err:  # an unexpected failure still ends on one line unless --debug
        if debug:
            raise
        _fail(f"{type(err).__name__}: {err}", code=1)
    if not quiet:
        typer.echo(f"report: {out / 'report.html'} ({len(result.rows)} rows, key {spec.key()})")


@app.command()
def worker(
    once: Annotated[bool, typer.Option(help="run at most one job, then exit")] = False,
    poll_seconds: Annotated[float, typer.Option(help="how often to look for a job")] = 1.0,
) -> None:
    """Take experiment jobs from the store and run them, each in a child process."""
    from indexer.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise typer.Exit(run_worker(get_settings(), once=once, poll_seconds=poll_seconds))


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Start the HTTP API (the `app` package, loaded by name: the engine never imports the web layer)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # one process: scale with replicas; searches run concurrently in the server's thread pool
    uvicorn.run("app.main:app", host=host, port=port, log_level="info")


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
