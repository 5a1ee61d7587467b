from collections.abc import Sequence
from typing import Any

def run(ops: Sequence[tuple[Any, ...]], /) -> tuple[int, int]: ...
def run_parallel(
    groups: Sequence[Sequence[tuple[Any, ...]]], threads: int, /
) -> list[tuple[int, int]]: ...
