"""Where and how a run executes: the device, and torch's CPU thread count."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU intra-op thread count set to `threads` (None: unchanged) inside the block, restored after."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
