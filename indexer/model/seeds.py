"""Library seeds derived from spec seeds, so that distinct spec seeds are distinct replicates.

hnswlib draws levels from libstdc++'s minstd generator, which maps seed 0 to 1: spec seeds 0 and 1
built byte-identical graphs, and "mean +- std over seeds" counted one graph twice. Each library gets
a seed hashed from (library, spec seed) into minstd's non-zero range [1, 2**31 - 2], where distinct
values are distinct generator states. The derivation is fixed: changing it changes every graph.
"""

from __future__ import annotations

import hashlib

DERIVATION = "sha256-minstd-v1"  # part of every cell key: cached cells built another way are not reused
_MODULUS = 2**31 - 1  # minstd_rand's modulus; its seed is taken modulo this, and 0 becomes 1


def library_seed(spec_seed: int, library: str) -> int:
    """The seed handed to `library` for the spec's `spec_seed`: stable across runs and platforms."""
    digest = hashlib.sha256(f"{library}:{int(spec_seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (_MODULUS - 1) + 1
