"""Check a compressed network against the original on inputs from the domain (float64)."""

from __future__ import annotations

import numpy as np

from ..schema import VerificationReport
from ..tolerances import VERIFY_TOLERANCE
from .domain import Box, Domain
from .network import AffineLayer, Network

#: corners per box: all 2^d for d <= this, else this many random corners (2^10)
MAX_CORNER_BITS = 10
#: at most this many corners over all boxes together (many-ball domains get fewer per box)
MAX_TOTAL_CORNERS = 65_536
#: rows per forward pass
CHUNK_ROWS = 16_384


def _corners(box: Box, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` corners of ``box``: all of them when ``count == 2**dim``, else random ones; (count, dim)."""
    if count == 2**box.dim:
        upper_side = ((np.arange(count)[:, None] >> np.arange(box.dim)) & 1) == 1
    else:
        upper_side = rng.random((count, box.dim)) < 0.5
    return np.where(upper_side, box.upper, box.lower)


def _domain_corners(domain: Domain, rng: np.random.Generator) -> np.ndarray:
    per_box = min(2 ** min(domain.dim, MAX_CORNER_BITS), max(1, MAX_TOTAL_CORNERS // len(domain.boxes)))
    return np.concatenate([_corners(box, per_box, rng) for box in domain.boxes])


def _inside(points: np.ndarray, domain: Domain) -> np.ndarray:
    """Rows of ``points`` (n, dim; higher ranks flattened) that lie in the domain (NaN rows never do)."""
    points = np.asarray(points, dtype=np.float64)
    if points.size == 0:
        return np.empty((0, domain.dim))
    points = points[None, :] if points.ndim == 1 else points.reshape(points.shape[0], -1)
    if points.shape[1] != domain.dim:
        raise ValueError(f"extra points have {points.shape[1]} features but the domain has {domain.dim}")
    return points[domain.contains(points)]


def _round_to_dtype(array: np.ndarray, dtype: str) -> np.ndarray:
    """``array`` cast to ``dtype`` (a numpy float dtype name or "bfloat16") and back to float64."""
    if dtype == "bfloat16":
        import torch

        return torch.tensor(array, dtype=torch.float64).to(torch.bfloat16).to(torch.float64).numpy()
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise ValueError(f"saved dtype must be a floating type, got {dtype}")
    return array.astype(dtype).astype(np.float64)


def _as_saved(network: Network, dtype: str) -> Network:
    """``network`` with its weights rounded to ``dtype`` (values kept in float64)."""
    rounded = tuple(
        AffineLayer(_round_to_dtype(layer.weight, dtype), _round_to_dtype(layer.bias, dtype)) for layer in network.layers
    )
    return Network(rounded, dtype=dtype)


def _point_chunks(domain: Domain, n_samples: int, rng: np.random.Generator, extra_points: np.ndarray | None):
    """The inputs to compare, at most ``CHUNK_ROWS`` uniform samples at a time (memory stays bounded)."""
    for start in range(0, n_samples, CHUNK_ROWS):
        yield domain.sample(min(CHUNK_ROWS, n_samples - start), rng)
    yield _domain_corners(domain, rng)
    if extra_points is not None:
        yield _inside(extra_points, domain)


def verify(
    original: Network,
    compressed: Network,
    domain: Domain,
    *,
    extra_points: np.ndarray | None = None,
    n_samples: int = 100_000,
    rng: np.random.Generator,
    tolerance: float = VERIFY_TOLERANCE,
    saved_dtype: str | None = None,
) -> VerificationReport:
    """Compare ``original`` and ``compressed`` outputs in float64 on inputs from ``domain``.

    Inputs: ``n_samples`` uniform draws, corners of every box (all 2^d for d <= 10, else 1024 random
    ones; at most ``MAX_TOTAL_CORNERS`` in all) and the rows of ``extra_points`` (n, dim) that lie in the
    domain (others dropped). A scalar domain is widened to the network's inputs. Passes when every
    output satisfies |y - y'| <= ``tolerance`` * (1 + |y|). With ``saved_dtype`` (e.g. "float32") also
    reports the max abs error after rounding the compressed weights to it (informational only);
    without it the report's ``saved_dtype`` is "float64".
    """
    if (original.input_dim, original.output_dim) != (compressed.input_dim, compressed.output_dim):
        raise ValueError(
            f"networks differ in shape: {original.input_dim}->{original.output_dim} vs "
            f"{compressed.input_dim}->{compressed.output_dim}"
        )
    domain = domain.broadcast(original.input_dim)
    saved = _as_saved(compressed, saved_dtype) if saved_dtype is not None else None
    n_inputs, max_abs, max_rel, saved_error, passed = 0, 0.0, 0.0, 0.0, True
    for points in _point_chunks(domain, n_samples, rng, extra_points):
        if not len(points):
            continue
        reference = original.forward(points)
        scale = 1.0 + np.abs(reference)
        error = np.abs(reference - compressed.forward(points))
        n_inputs += len(points)
        max_abs = max(max_abs, float(np.max(error)))
        max_rel = max(max_rel, float(np.max(error / scale)))
        passed &= bool(np.all(error <= tolerance * scale))
        if saved is not None:
            saved_error = max(saved_error, float(np.max(np.abs(reference - saved.forward(points)))))
    return VerificationReport(
        n_inputs=n_inputs,
        max_abs_error=max_abs,
        max_rel_error=max_rel,
        tolerance=tolerance,
        passed=passed,
        saved_dtype=saved_dtype or "float64",
        max_abs_error_saved_dtype=saved_error if saved is not None else None,
    )
