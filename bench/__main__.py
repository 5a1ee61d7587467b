"""Run benchmarks by name (all by default); ``--quick`` uses small sizes for a smoke run.

Every benchmark prints its figures, the target the issue set, and the ratio to
the peers it is measured against in the same run. Record results in
docs/benchmarks.md with the machine they ran on.
"""

from __future__ import annotations

import importlib
import inspect
import sys

BENCHMARKS: dict[str, str] = {
    "ledger": "bench.ledger.__main__",
    "nessus": "bench.connectors_nessus",
    "jsonl": "bench.connectors_jsonl",
    "controls": "bench.controls_eval",
}


def main(argv: list[str] | None = None) -> None:
    """Run the named benchmarks (all known ones when none is named)."""
    args = list(sys.argv[1:] if argv is None else argv)
    names = [a for a in args if not a.startswith("-")]
    flags = [a for a in args if a.startswith("-")]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark {unknown[0]!r}; known: {', '.join(BENCHMARKS)}")
    for name in names or list(BENCHMARKS):
        try:
            module = importlib.import_module(BENCHMARKS[name])
        except ModuleNotFoundError as exc:
            print(f"== {name}: not available ({exc.name})", flush=True)
            continue
        print(f"== {name}", flush=True)
        entry = module.main
        if inspect.signature(entry).parameters:
            entry(flags)
        else:
            sys.argv = [BENCHMARKS[name], *flags]
            entry()


if __name__ == "__main__":
    main()
