"""Tiny models on a shared 2-core machine: one intra-op thread avoids OpenMP oversubscription (~6x faster).

A module opts in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
