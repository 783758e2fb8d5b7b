"""`indexer run --cache-dir X` writes its cache, derived models included, into X and nowhere else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_a_run_writes_only_into_its_cache_out_and_nothing_else(tmp_path: Path) -> None:
    cache, out, data, home, scratch = (tmp_path / n for n in ("cache", "out", "data", "home", "tmp"))
    home.mkdir()
    scratch.mkdir()
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "cache-dir",
        "dataset": {"kind": "text", "corpus": "bbc", "models": ["minilm-l3"], "limit": 120, "queries": 12},
        "k": 5, "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 32, "ef_search": [16]}],
    }))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(scratch),
           "INDEXER_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "indexer.cli", "run", str(spec), "--out", str(out), "--cache-dir",
                           str(cache), "--quiet"], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (cache / "models" / "minilm-l3").is_dir(), _files(cache)  # the derived model is built in the cache
    assert (out / "report.json").is_file()
    assert not data.exists(), _files(data)  # the default data dir (INDEXER_DATA_DIR) is never touched
    assert _files(home) == [], [f for f in _files(home) if f.count("/") < 2]
    # TMPDIR holds only the machine-wide timing lock, shared by every run on purpose (indexer.common.timing)
    assert _files(scratch) == ["indexer-timing.lock", "indexer-timing.lock.turnstile"], _files(scratch)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "home", "out", "spec.yaml", "tmp"]
