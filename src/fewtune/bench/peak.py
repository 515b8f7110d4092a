"""The machine's measured matmul peak, the denominator of model FLOPs utilisation."""

from __future__ import annotations

import time

import torch


def matmul_peak_gflops(dtype: torch.dtype, device: str = "cpu", repeats: int = 10) -> float:
    """Best-of-3 throughput of an n x n matrix product, in GFLOP/s (n = 2048 on CPU, 8192 on a GPU)."""
    n = 8192 if device == "cuda" else 2048
    a, b = (
        torch.randn(n, n, dtype=dtype, device=device),
        torch.randn(n, n, dtype=dtype, device=device),
    )
    torch.mm(a, b)  # warm-up: thread pool, kernel selection
    best = float("inf")
    for _ in range(3):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2 * n**3 / best / 1e9


def synchronize(device: str) -> None:
    # CUDA runs asynchronously: a timer without this measures only the kernel launches.
    if device == "cuda":
        torch.cuda.synchronize()
