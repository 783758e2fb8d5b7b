"""A spec naming systems whose packages are missing fails once, naming every missing package and the one
command that installs them all, before any work (indexer.backends.require_all)."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.backends import BACKENDS, require_all
from indexer.backends.declaration import Library
from indexer.common.errors import UserError
from indexer.engine.spec import parse_spec


def _hide(monkeypatch: pytest.MonkeyPatch, *backends: str) -> None:
    """These backends' packages look uninstalled; every other one keeps its real answer."""
    hidden = {BACKENDS[name].library.module for name in backends}
    installed = Library.installed
    monkeypatch.setattr(Library, "installed", lambda self: self.module not in hidden and installed(self))


def test_one_error_names_every_missing_package_and_one_command(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "usearch", "chroma")
    with pytest.raises(UserError) as err:
        require_all(["hnswlib", "usearch", "chroma", "usearch"])
    message = str(err.value)
    assert message == ("backends usearch, chroma need the packages usearch, chromadb, which are not installed: "
                       "pip install -e '.[chroma,usearch]'")


def test_one_missing_package_keeps_the_message_the_readme_quotes(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "chroma")
    with pytest.raises(UserError, match=r"^backend chroma needs the package chromadb, which is not installed: "
                                        r"pip install -e '\.\[chroma\]'$"):
        require_all(["chroma"])


def test_a_missing_core_package_is_installed_with_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "hnswlib", "usearch")
    with pytest.raises(UserError, match=r"hnswlib, usearch, which are not installed: pip install -e '\.\[usearch\]'$"):
        require_all(["hnswlib", "usearch"])
    with pytest.raises(UserError, match=r"which is not installed: pip install -e \.$"):
        require_all(["hnswlib"])


def test_nothing_missing_is_no_error() -> None:
    require_all(["hnswlib", "faiss_hnsw", "exact"])  # core dependencies: always installed
    require_all([])


def test_the_runner_names_them_all_before_any_work(monkeypatch: pytest.MonkeyPatch, tiny_spec_dict: dict,
                                                   tmp_path: Path) -> None:
    from indexer.engine.runner import run

    _hide(monkeypatch, "voyager", "lancedb")
    spec = parse_spec({**tiny_spec_dict, "backends": [{"name": "hnswlib"}, {"name": "voyager"}, {"name": "lancedb"}]})
    with pytest.raises(UserError, match=r"backends voyager, lancedb need .*pip install -e '\.\[lancedb,voyager\]'"):
        run(spec, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_a_companion_package_of_an_extra_is_named_with_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """duckdb installed without its vss extension: the runner's check names the extension before any work,
    beside the other missing packages, instead of the cell failing on it later."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in {
        "duckdb_extension_vss", "usearch"} else find_spec(name, *a))
    with pytest.raises(UserError) as err:
        require_all(["duckdb_vss", "usearch"])
    assert str(err.value) == ("backends duckdb_vss, usearch need the packages duckdb-extension-vss, usearch, which "
                              "are not installed: pip install -e '.[duckdb-vss,usearch]'")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in {
        "duckdb", "duckdb_extension_vss"} else find_spec(name, *a))
    with pytest.raises(UserError, match=r"^backend duckdb_vss needs the packages duckdb, duckdb-extension-vss, "
                                        r"which are not installed: pip install -e '\.\[duckdb-vss\]'$"):
        require_all(["duckdb_vss"])
