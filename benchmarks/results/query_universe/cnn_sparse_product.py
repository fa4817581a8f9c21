"""The unrolled conv-2 matrix of c64-8s1-16s2-d64-gl1_0 (256 x 512, 12% nonzero) in the products of a
branch-and-bound step ((B Q) = 1026 rows of coefficients), dense against torch CSR, one thread; milliseconds
per product.

    python benchmarks/results/query_universe/cnn_sparse_product.py   (from the repository root)
"""

import time
from pathlib import Path

import torch

from exactcompress.io import load_network


def milliseconds(product, repeat: int = 50) -> float:
    product()
    start = time.perf_counter()
    for _ in range(repeat):
        product()
    return (time.perf_counter() - start) / repeat * 1e3


torch.set_num_threads(1)
network, _ = load_network(Path("out/bench_zoo_cnn/c64-8s1-16s2-d64-gl1_0.pt"))
W = torch.tensor(network.hidden[1].weight, dtype=torch.float32)  # (256, 512)
print("shape", tuple(W.shape), "nonzero", round((W != 0).float().mean().item(), 3))
coefs, grads = torch.randn(1026, 256), torch.randn(1026, 512)
W_csr, WT_csr = W.to_sparse_csr(), W.T.contiguous().to_sparse_csr()
print(f"coefs @ W: dense {milliseconds(lambda: coefs @ W):.2f}, CSR (W^T coefs^T)^T "
      f"{milliseconds(lambda: (WT_csr @ coefs.T.contiguous()).T):.2f}, coefs @ CSR {milliseconds(lambda: coefs @ W_csr):.2f}")
print(f"grads @ W^T: dense {milliseconds(lambda: grads @ W.T):.2f}, CSR (W grads^T)^T "
      f"{milliseconds(lambda: (W_csr @ grads.T.contiguous()).T):.2f}")
W64, coefs64 = W.double(), coefs.double()
WT64_csr = W64.T.contiguous().to_sparse_csr()
print(f"float64 coefs @ W: dense {milliseconds(lambda: coefs64 @ W64):.2f}, CSR "
      f"{milliseconds(lambda: (WT64_csr @ coefs64.T.contiguous()).T):.2f}")
