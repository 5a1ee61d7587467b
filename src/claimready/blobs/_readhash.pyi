from mmap import mmap

def read_files(
    paths: tuple[bytes, ...], start: int, buffer: mmap, offset: int, /
) -> tuple[int, int, list[tuple[bytes, int]], int]: ...
