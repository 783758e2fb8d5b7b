"""What the HTTP layer costs: POST /indexes/{id}/search against a direct search on the same index.

One hnswlib index is built through the engine (a spec submitted to the store, run by the real worker;
reused when the data dir already holds it), then served by uvicorn on 127.0.0.1 and also opened in
this process. In the same run it measures:
  - single-vector latency, sequential: raw hnswlib knn_query, the engine's LoadedIndex.search, and the
    API (client included); p50/p99 of each and the API's overhead over the direct call;
  - throughput with N concurrent clients against the API, and the direct loop's for comparison.
Targets on 2 cores: p50 overhead < 2 ms, >= 500 single-vector searches/s.

    python bench/bench_service.py [--points 5000] [--clients 8] [--seconds 10] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

log = logging.getLogger("bench_service")


async def noop_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The HTTP floor: uvicorn answering without any app work (served with `bench.bench_service:noop_app`)."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"results":[]}'})


def bench_spec(points: int, dim: int, ef: int) -> dict[str, Any]:
    return {
        "name": f"bench-service-{points}x{dim}",
        "dataset": {"kind": "synthetic", "intrinsic_dims": [8, 16, 32], "points_per_subspace": points,
                    "queries_per_subspace": 200, "ambient_dim": dim},
        "metric": "cosine",
        "k": 10,
        "backends": [{"name": "hnswlib", "M": 16, "ef_construction": 200, "ef_search": [ef]}],
    }


def server_env(data_dir: Path, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INDEXER_")}
    env.update({"INDEXER_DATA_DIR": str(data_dir), "INDEXER_SEARCH_THREADS": str(threads),
                "PYTHONPATH": str(REPO), "HNSWLIB_NO_NATIVE": "1"})
    return env


def build_index(data_dir: Path, spec: dict[str, Any], env: dict[str, str]) -> Any:
    """Submit the spec and run the worker once (a no-op when an identical spec already succeeded)."""
    from indexer.engine.spec import parse_spec
    from indexer.service.store import Store
    from indexer.settings import Settings

    settings = Settings(data_dir=data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.resolved_database_url)
    store.migrate()
    job, _ = store.submit(parse_spec(spec))
    if job.status != "succeeded":
        log.info("building the index through the engine (worker) ...")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "indexer.cli", "worker", "--once"], cwd=REPO, env=env, check=True)
        log.info("built in %.1f s", time.perf_counter() - started)
    done = store.get(job.id)
    if done is None or done.status != "succeeded":
        raise SystemExit(f"the build did not succeed: {done.error if done else 'no job'}")
    view = next(v for v in store.list_indexes() if v.experiment_id == done.id and v.backend == "hnswlib")
    store.close()
    return view


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], workers: int, target: str = "app.main:app") -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
        cwd=REPO, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("uvicorn did not come up")


def timed(fn: Callable[[int], Any], count: int) -> np.ndarray:
    """Per-call wall time in ms, calling fn(i) for i in range(count)."""
    out = np.empty(count)
    for i in range(count):
        t0 = time.perf_counter()
        fn(i)
        out[i] = (time.perf_counter() - t0) * 1e3
    return out


def interleaved(fns: dict[str, Callable[[int], Any]], count: int, rounds: int = 10) -> dict[str, np.ndarray]:
    """Time each fn `count` times in alternating rounds, so that all see the same background load
    (this machine's cores are shared)."""
    per_round = max(1, count // rounds)
    out: dict[str, list[np.ndarray]] = {name: [] for name in fns}
    for r in range(rounds):
        for name, fn in fns.items():
            offset = r * per_round
            out[name].append(timed(partial(_shifted, fn, offset), per_round))
    return {name: np.concatenate(parts) for name, parts in out.items()}


def _shifted(fn: Callable[[int], Any], offset: int, i: int) -> Any:
    return fn(offset + i)


def pct(ms: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def concurrent_qps(url: str, index_id: str, queries: list[list[float]], clients: int, seconds: float,
                   max_requests: int, k: int, ef: int) -> tuple[float, int, int]:
    """Requests/s with `clients` threads, each with its own keep-alive connection, bounded by time
    and count. Returns (qps, done, errors)."""
    stop_at = time.perf_counter() + seconds
    counter = {"done": 0, "errors": 0}
    lock = threading.Lock()

    def client(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            i = worker
            while time.perf_counter() < stop_at:
                with lock:
                    if counter["done"] + counter["errors"] >= max_requests:
                        return
                r = c.post(f"/indexes/{index_id}/search",
                           json={"vectors": [queries[i % len(queries)]], "k": k, "ef": ef})
                with lock:
                    counter["done" if r.status_code == 200 else "errors"] += 1
                i += clients

    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return counter["done"] / elapsed, counter["done"], counter["errors"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None, help="reuse an index built earlier here")
    ap.add_argument("--points", type=int, default=5000, help="points per subspace (3 subspaces)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--requests", type=int, default=1000, help="sequential single-vector searches")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0, help="time bound of the concurrent phase")
    ap.add_argument("--max-concurrent-requests", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--threads", type=int, default=1, help="INDEXER_SEARCH_THREADS for the server")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise

    data_dir = (args.data_dir or Path(tempfile.mkdtemp(prefix="bench-service-"))).resolve()
    env = server_env(data_dir, args.threads)
    view = build_index(data_dir, bench_spec(args.points, args.dim, args.ef), env)
    log.info("index %s: %d x %d, %s, %.1f MB", view.id, view.n, view.dim, view.backend, view.size_bytes / 1e6)

    from app.threads import limit_threads
    from indexer.service.artifacts import open_index

    limit_threads(args.threads)  # the direct side gets the same thread budget as the server
    loaded = open_index(data_dir / view.path, data_dir=data_dir)
    queries = np.ascontiguousarray(loaded.held_out_queries(), dtype=np.float32)
    as_lists = queries.tolist()
    n = args.requests

    # raw hnswlib: queries already in the index's space; the backend's own lock and set_ef left out
    raw = getattr(loaded.index, "_index", None)
    in_space = loaded._to_space(queries)
    fns: dict[str, Callable[[int], Any]] = {}
    if raw is not None:
        raw.set_ef(args.ef)
        fns["raw"] = lambda i: raw.knn_query(in_space[i % len(in_space)][None, :], k=args.k, num_threads=1)
    fns["direct"] = lambda i: loaded.search(queries[i % len(queries)][None, :], args.k, args.ef)

    proc, url = start_server(env, args.workers)
    floor_proc, floor_url = start_server(env, 1, target="bench.bench_service:noop_app")
    try:
        with httpx.Client(base_url=url, timeout=30) as c, httpx.Client(base_url=floor_url, timeout=30) as f:
            path = f"/indexes/{view.id}/search"

            def one(client: httpx.Client, i: int) -> None:
                r = client.post(path, json={"vectors": [as_lists[i % len(as_lists)]], "k": args.k, "ef": args.ef})
                r.raise_for_status()

            fns["floor"] = lambda i: one(f, i)
            fns["api"] = lambda i: one(c, i)
            interleaved(fns, 400, rounds=2)  # warm up; loads the index into the server's cache
            ms = interleaved(fns, n)
            # same answers as the direct search
            body = c.post(path, json={"vectors": as_lists[:20], "k": args.k, "ef": args.ef}).json()
            same = [[h["id"] for h in row] for row in body["results"]] == \
                loaded.search(queries[:20], args.k, args.ef)[0].tolist()
        qps, done, errors = concurrent_qps(url, view.id, as_lists, args.clients, args.seconds,
                                           args.max_concurrent_requests, args.k, args.ef)
    finally:
        for p in (proc, floor_proc):
            p.terminate()
            p.wait(timeout=20)

    t0 = time.perf_counter()
    loops = 0
    while time.perf_counter() - t0 < min(args.seconds, 3.0):
        loaded.search(queries[loops % len(queries)][None, :], args.k, args.ef)
        loops += 1
    direct_qps = loops / (time.perf_counter() - t0)

    direct_ms, api_ms, floor_ms, raw_ms = ms["direct"], ms["api"], ms["floor"], ms.get("raw")
    d50, d99 = pct(direct_ms)
    a50, a99 = pct(api_ms)
    f50, f99 = pct(floor_ms)
    figures: dict[str, Any] = {
        "index": {"id": view.id, "n": view.n, "dim": view.dim, "k": args.k, "ef": args.ef},
        "cores": os.cpu_count(), "server_workers": args.workers, "search_threads": args.threads,
        "direct_ms": {"p50": d50, "p99": d99, "mean": statistics.fmean(direct_ms)},
        "api_ms": {"p50": a50, "p99": a99, "mean": statistics.fmean(api_ms)},
        "overhead_ms": {"p50": a50 - d50, "p99": a99 - d99},
        "http_floor_ms": {"p50": f50, "p99": f99},
        "api_qps": qps, "api_requests": done, "api_errors": errors, "clients": args.clients,
        "direct_qps_one_thread": direct_qps, "same_answers": same,
    }
    if raw_ms is not None:
        r50, r99 = pct(raw_ms)
        figures["raw_hnswlib_ms"] = {"p50": r50, "p99": r99}

    log.info("")
    log.info("single-vector search, %d sequential calls (ms)      p50      p99", n)
    if raw_ms is not None:
        log.info("  raw hnswlib knn_query                        %8.3f %8.3f", *pct(raw_ms))
    log.info("  direct LoadedIndex.search                    %8.3f %8.3f", d50, d99)
    log.info("  API POST /search (client included)           %8.3f %8.3f", a50, a99)
    log.info("  API overhead (API - direct)                  %8.3f %8.3f   target p50 < 2 ms: %s",
             a50 - d50, a99 - d99, "met" if a50 - d50 < 2 else "MISSED")
    log.info("    of which the HTTP floor (httpx + uvicorn, no app) %8.3f %8.3f", f50, f99)
    log.info("    of which the app (API - floor - direct)  %8.3f", a50 - f50 - d50)
    log.info("  API / direct p50 ratio                       %8.1fx", a50 / d50 if d50 else float("nan"))
    log.info("throughput")
    log.info("  API, %d concurrent clients                  %8.0f /s  (%d ok, %d errors)  target >= 500: %s",
             args.clients, qps, done, errors, "met" if qps >= 500 else "MISSED")
    log.info("  direct, one thread                           %8.0f /s  (API/direct %.2f)", direct_qps,
             qps / direct_qps if direct_qps else float("nan"))
    log.info("same answers through the API as direct: %s", same)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
