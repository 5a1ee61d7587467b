"""The pymerkle side of the side-by-side benchmark.

Runs in a throwaway virtual environment that has pymerkle installed (it is
never a dependency of claimready) and imports nothing from claimready.
Prints one JSON object: build seconds and microseconds per inclusion proof.
"""

from __future__ import annotations

import json
import random
import sys
import time

from pymerkle import InmemoryTree  # type: ignore[import-not-found]


def _entry(i: int) -> bytes:
    return (
        b'{"actor":"connector:edr","blob":{"sha256":"'
        + f"{i:064x}".encode()
        + b'","size":1234},"tenant":"bench","type":"evidence.collected","v":1}'
    )


def main() -> None:
    """Build a tree of ``argv[1]`` leaves, then time 10,000 inclusion proofs."""
    leaves = int(sys.argv[1])
    data = [_entry(i) for i in range(leaves)]
    start = time.perf_counter()
    tree = InmemoryTree(algorithm="sha256")
    for entry in data:
        tree.append_entry(entry)
    build = time.perf_counter() - start
    rng = random.Random(1)
    picks = [rng.randrange(leaves) + 1 for _ in range(10_000)]  # pymerkle counts from 1
    start = time.perf_counter()
    for index in picks:
        tree.prove_inclusion(index, leaves)
    proof_us = (time.perf_counter() - start) / len(picks) * 1e6
    print(json.dumps({"build_s": build, "proof_us": proof_us, "version": _version()}))


def _version() -> str:
    import pymerkle  # type: ignore[import-not-found]

    return str(pymerkle.__version__)


if __name__ == "__main__":
    main()
