from collections.abc import Sequence
from typing import Any

def run(ops: Sequence[tuple[Any, ...]], /) -> tuple[int, int]: ...
