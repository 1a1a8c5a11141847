"""Encode the images the cache does not hold yet: each image decoded and encoded once, in batches.

Two schedules, by device:
- CUDA: worker processes decode (reduced-size JPEG decoding), the main process encodes batches of
  `batch_size` on the GPU under bf16 autocast.
- CPU: worker processes decode *and* encode their chunk, one intra-op thread each. On a small CPU the
  cores are the parallelism: a tiny encoder's convolutions do not scale over threads, and threads that
  spin-wait collapse when other processes share the cores (measured: batch-1 encoding 6 ms with one
  thread, 340 ms with two on this project's busy 2-core machine). Workers are forked after the codec is
  built, so they share its weights copy-on-write; they only run single-threaded torch (as DataLoader
  workers do), which is fork-safe.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipelines.latent_shards.cache import LatentCache
from pipelines.latent_shards.decode import decode_chunks
from pipelines.latent_shards.preprocess import load_images, to_tensor

log = logging.getLogger(__name__)

DECODE_CHUNK = 8  # GPU schedule: images per decoding task, small enough to spread large JPEGs over workers

_WORKER_CODEC = None  # the codec inherited by forked CPU workers


@dataclass(frozen=True)
class EncodeStats:
    images: int  # distinct images (by sha256) asked for
    encoded: int  # encoded in this run (cache misses)
    cached: int  # found in the cache
    seconds: float  # decode + encode + cache writes of the misses

    @property
    def images_per_second(self) -> float | None:
        return self.encoded / self.seconds if self.encoded and self.seconds > 0 else None


def _encode(codec, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = codec.encode(to_tensor(images))
    return mean.numpy().astype(np.float16), std.numpy().astype(np.float16)


def _init_cpu_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _decode_and_encode(paths: list[Path], resolution: int, hashes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    return _encode(_WORKER_CODEC, load_images(paths, resolution, hashes))


def _cpu_worker_batches(codec, paths: list[Path], digests: list[str], resolution: int, batch_size: int,
                        workers: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(start, mean, std) per chunk, in order; at most 2 * workers chunks in flight."""
    global _WORKER_CODEC
    size = max(1, min(batch_size, math.ceil(len(paths) / (4 * workers))))  # >= 4 chunks per worker: balance
    starts = list(range(0, len(paths), size))
    _WORKER_CODEC = codec
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_init_cpu_worker) as pool:
            pending: deque[tuple[int, Future]] = deque()
            for start in starts:
                pending.append((start, pool.submit(_decode_and_encode, paths[start:start + size], resolution,
                                                   digests[start:start + size])))
                while len(pending) >= 2 * workers:
                    done_start, future = pending.popleft()
                    yield done_start, *future.result()
            while pending:
                done_start, future = pending.popleft()
                yield done_start, *future.result()
    finally:
        _WORKER_CODEC = None


def _main_process_batches(codec, paths: list[Path], digests: list[str], resolution: int, batch_size: int,
                          workers: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    pending: list[np.ndarray] = []
    start = queued = 0
    for chunk in decode_chunks(paths, resolution, DECODE_CHUNK, workers, digests):
        pending.append(chunk)
        queued += len(chunk)
        if queued - start >= batch_size or queued == len(paths):
            mean, std = _encode(codec, np.concatenate(pending))
            yield start, mean, std
            start, pending = queued, []


def encode_missing(paths: list[Path], hashes: list[str], codec, cache: LatentCache, resolution: int,
                   batch_size: int = 64, workers: int = 2) -> EncodeStats:
    """Ensure the cache holds every image (paths[i] has sha256 hashes[i]); encode only the misses."""
    first_path: dict[str, Path] = {}
    for path, digest in zip(paths, hashes, strict=True):
        first_path.setdefault(digest, path)
    todo = sorted(d for d in first_path if d not in cache)  # sorted: the same batches on every run
    started = time.perf_counter()
    if todo:
        on_cpu = codec.device.type == "cpu" and workers > 1 and "fork" in multiprocessing.get_all_start_methods()
        log.info("encoding %d of %d images with %s on %s (%s)", len(todo), len(first_path), codec.encoder_id,
                 codec.device, f"{workers} decode+encode processes" if on_cpu else f"{workers} decode processes")
        todo_paths = [first_path[d] for d in todo]
        schedule = _cpu_worker_batches if on_cpu else _main_process_batches
        with tqdm(total=len(todo), desc="encode latents", unit="img", leave=False) as progress:
            for start, mean, std in schedule(codec, todo_paths, todo, resolution, batch_size, workers):
                for i in range(len(mean)):
                    if not (np.isfinite(mean[i]).all() and np.isfinite(std[i]).all()):
                        raise ValueError(f"{todo_paths[start + i]}: the encoder {codec.encoder_id} gave a non-finite "
                                         f"latent (NaN/Inf, or beyond fp16 range); not cached")
                    cache.put(todo[start + i], mean[i], std[i])
                progress.update(len(mean))
    return EncodeStats(images=len(first_path), encoded=len(todo), cached=len(first_path) - len(todo),
                       seconds=time.perf_counter() - started)
