"""Decode images in worker processes, in chunks, with a bounded number of chunks in flight.

`Executor.map` would submit every image at once and let decoded pixels pile up in memory when encoding
is the slower side; here at most `2 * workers` chunks are pending, and chunks come back in order.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np

from pipelines.latent_shards.preprocess import load_images


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def decode_chunks(paths: list[Path], resolution: int, chunk_size: int, workers: int,
                  expected_sha256: list[str | None] | None = None) -> Iterator[np.ndarray]:
    """Yield (n, res, res, 3) uint8 arrays for consecutive chunks of `paths`, in order."""
    hashes = expected_sha256 if expected_sha256 is not None else [None] * len(paths)
    jobs = list(zip(_chunks(paths, chunk_size), _chunks(hashes, chunk_size), strict=True))
    if workers <= 1 or len(jobs) <= 1:
        for chunk_paths, chunk_hashes in jobs:
            yield load_images(chunk_paths, resolution, chunk_hashes)
        return
    # fork is cheap and the children run only Pillow/numpy (no torch, no CUDA); spawn where fork is missing.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method)) as pool:
        pending: deque[Future] = deque()
        queue = iter(jobs)
        for chunk_paths, chunk_hashes in queue:
            pending.append(pool.submit(load_images, chunk_paths, resolution, chunk_hashes))
            if len(pending) >= 2 * workers:
                break
        while pending:
            result = pending.popleft().result()
            next_job = next(queue, None)
            if next_job is not None:
                pending.append(pool.submit(load_images, next_job[0], resolution, next_job[1]))
            yield result
