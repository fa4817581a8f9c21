"""Check a compressed network against the original on inputs from the domain (float64)."""

from __future__ import annotations

import contextlib
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from ..schema import VerificationReport
from ..tolerances import VERIFY_TOLERANCE
from .domain import Box, Domain
from .network import AffineLayer, Network
from .progress import Progress, ignore

#: corners per box: all 2^d for d <= this, else this many random corners (2^10)
MAX_CORNER_BITS = 10
#: at most this many corners over all boxes together (many-ball domains get fewer per box)
MAX_TOTAL_CORNERS = 65_536
#: at most this many rows per forward pass
CHUNK_ROWS = 16_384
#: and at most this many bytes in the widest float64 array of one pass: below glibc's largest mmap threshold
#: (32 MiB), so a freed chunk's memory is reused, not unmapped and page-faulted in again for the next chunk
#: (measured: 22 s -> 9 s on a 784-input CNN with 1568-wide layers, 16 s -> 9 s on a 3072-input 2x800 net)
CHUNK_ARRAY_BYTES = 24 * 2**20
#: uniform draws in the domain by default (``--verify-samples``)
DEFAULT_SAMPLES = 100_000
#: uniform draws the informational saved-dtype comparison uses (besides the corners and extra points)
SAVED_DTYPE_SAMPLES = CHUNK_ROWS
#: safety factor on the float32 screen's rounding bound (``_DroppedNeuronScreen``)
SCREEN_ROUNDING = 1.01
#: the screen stops (every later row goes through the original in float64) once more than this share of a
#: chunk of uniform draws needs the float64 pass anyway (e.g. dropped first-layer neurons folded as active)
SCREEN_MAX_FULL_SHARE = 0.25


def chunk_rows(*networks: Network) -> int:
    """Rows per forward pass: ``CHUNK_ROWS``, fewer when the widest input or layer would make one float64
    array exceed ``CHUNK_ARRAY_BYTES``."""
    widest = max(max(network.input_dim, *(layer.weight.shape[0] for layer in network.layers)) for network in networks)
    return max(1, min(CHUNK_ROWS, CHUNK_ARRAY_BYTES // (8 * widest)))


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


def round_to_dtype(array: np.ndarray, dtype: str) -> np.ndarray:
    """``array`` cast to ``dtype`` (a numpy float dtype name or "bfloat16") and back to float64 (float64: itself)."""
    if dtype == "float64":
        return array
    if dtype == "bfloat16":
        import torch

        return torch.tensor(array, dtype=torch.float64).to(torch.bfloat16).to(torch.float64).numpy()
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise ValueError(f"saved dtype must be a floating type, got {dtype}")
    return array.astype(dtype).astype(np.float64)


def _as_saved(network: Network, dtype: str) -> Network:
    """``network`` with its weights rounded to ``dtype`` (values kept in float64); a pooled Linear's weight on the
    pooled tensor is rounded, as a file holds it, and composed with its pools again."""
    rounded = tuple(
        AffineLayer.pooled_layer(layer.pooled.with_weight(round_to_dtype(layer.pooled.weight, dtype)),
                                 round_to_dtype(layer.bias, dtype)) if layer.written_pooled is not None
        else AffineLayer(round_to_dtype(layer.weight, dtype), round_to_dtype(layer.bias, dtype))
        for layer in network.layers
    )
    return Network(rounded, dtype=dtype)


def _fill_uniform(buffer: np.ndarray, domain: Domain, first_draw: int, n_draws: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Overwrite ``buffer`` (n, dim) in place with draws ``first_draw`` .. ``first_draw + n - 1`` of ``n_draws``
    uniform draws over the domain's boxes and return it. Draw i lies in box ``i * n_boxes // n_draws``: equal
    shares, contiguous rows, every box drawn from once ``n_draws >= n_boxes``, however few rows a pass has. No
    allocation per chunk, so no page faults on wide inputs."""
    owners = (np.arange(first_draw, first_draw + len(buffer)) * len(domain.boxes)) // max(n_draws, 1)
    starts = np.flatnonzero(np.diff(owners, prepend=-1))
    for start, stop in zip(starts, [*starts[1:], len(buffer)]):
        domain.boxes[owners[start]].sample_into(buffer[start:stop], rng)
    return buffer


def _draw_chunk(buffer: np.ndarray, domain: Domain, first_draw: int, n_draws: int, seed: int) -> np.ndarray:
    """Draws ``first_draw`` .. ``first_draw + len(buffer) - 1`` of ``n_draws`` (``_fill_uniform``) into ``buffer``,
    from an SFC64 generator of their own seeded by ``(seed, first_draw)``: the same draws whichever thread makes
    them, in whatever order. On a wide input the draws are the largest cost of verification, and SFC64 fills
    float64 arrays faster than numpy's default PCG64 (``benchmarks/README.md``)."""
    rng = np.random.Generator(np.random.SFC64([seed, first_draw]))
    return _fill_uniform(buffer, domain, first_draw, n_draws, rng)


def _in_chunks(points: np.ndarray, rows: int):
    """``points`` (n, dim) in slices of at most ``rows`` rows."""
    return (points[start: start + rows] for start in range(0, len(points), rows))


def shared_first_rows(original: Network, compressed: Network) -> np.ndarray | None:
    """Indices ``rows`` with ``compressed``'s first layer bitwise equal to ``original``'s first layer
    restricted to ``rows`` (weights and biases; both first layers hidden), else None. Then the compressed
    net's first pre-activations are ``original``'s columns ``rows``: one product serves both networks."""
    if len(original.layers) < 2 or len(compressed.layers) < 2:
        return None
    source, target = original.layers[0], compressed.layers[0]
    if source.weight.shape[1] != target.weight.shape[1]:
        return None
    index = {}
    for row, (weight, bias) in enumerate(zip(source.weight, source.bias)):
        index.setdefault(weight.tobytes() + bias.tobytes(), row)
    rows = [index.get(weight.tobytes() + bias.tobytes()) for weight, bias in zip(target.weight, target.bias)]
    return None if any(row is None for row in rows) else np.array(rows, dtype=np.int64)


def same_layers(original: Network, compressed: Network) -> bool:
    """Whether ``compressed`` has ``original``'s layers bitwise (every weight and bias): nothing was removed,
    folded or merged, so the float64 outputs of both are the same computation on the same numbers."""
    return len(original.layers) == len(compressed.layers) and all(
        np.array_equal(ours.weight, theirs.weight) and np.array_equal(ours.bias, theirs.bias)
        for ours, theirs in zip(original.layers, compressed.layers))


def _outputs_from_first(network: Network, first: np.ndarray) -> np.ndarray:
    """Outputs (n, out) of ``network`` given its first layer's pre-activations ``first`` (n, width_0)."""
    h = np.maximum(first, 0.0)
    for layer in network.layers[1:-1]:
        h = np.maximum(layer(h), 0.0)
    return network.layers[-1](h)


class _DroppedNeuronScreen:
    """The original's first-layer neurons that the compressed first layer does not keep (``dropped``), shown
    <= 0 so that the original's output is that of ``reduced`` (the original without them) from the kept
    pre-activations, which the compressed net computes anyway. Two steps, each with a rounding bound:

    - on the whole domain, once: a dropped neuron whose largest value over every box (``W+ upper + W- lower
      + b``, exact for a first layer up to float64 rounding) is <= ``-slack`` is <= 0 at every input in the
      domain, and at uniform draws a few ulps outside a box; it needs no work per input (``cleared``);
    - per input, for the rest (``uncertain``): in float32, a row where each has ``g32 <= -slack`` is cleared.

    Rows where some uncertain neuron is not so cleared go through the original in float64 as before (every
    row is a point of the domain, so none is NaN). ``slack = SCREEN_ROUNDING * gamma * (|W| xmag + |b|)`` with
    ``gamma = n u / (1 - n u)``, ``n = d + 8``, ``u = 2**-24`` bounds |g32 - g| for any summation order
    (float32 inputs, weights, products, sums; ``xmag`` (d,): the domain's largest |x| per input, so one slack
    serves every chunk); it dwarfs the float64 errors of the domain step (below ``(d + 2) 2**-52`` of the same
    scale). ``usable`` says whether n u is small enough (below 0.01). On the 3072-input 2x800 bench net all 774
    dropped neurons are cleared on the domain: the largest product of the verification shrinks from 800 float64
    columns to the 26 kept ones."""

    def __init__(self, original: Network, rows: np.ndarray, domain: Domain):
        first = original.layers[0]
        dropped = np.setdiff1d(np.arange(first.out_features), rows)
        largest, magnitude = AffineLayer(first.weight[dropped], first.bias[dropped]).largest_on_boxes(
            np.stack([box.lower for box in domain.boxes]), np.stack([box.upper for box in domain.boxes]))
        terms = (first.in_features + 8) * 2.0**-24
        self.usable = terms < 0.01
        self.factor = SCREEN_ROUNDING * terms / (1.0 - terms)
        slack = self.factor * magnitude + 1e-30
        uncertain = ~(largest <= -slack)
        self.cleared = int(len(dropped) - uncertain.sum())
        self.weight32 = first.weight[dropped[uncertain]].astype(np.float32)
        self.bias32 = first.bias[dropped[uncertain]].astype(np.float32)
        self.slack = slack[uncertain]
        self.reduced = original.without_first_neurons(rows)
        self.original = original

    def outputs(self, points: np.ndarray, kept_first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The original's outputs (n, out) at ``points`` (n, d) given its kept first pre-activations
        ``kept_first`` (n, len(rows)), and the mask (n,) of rows that went through the full float64 pass."""
        if len(self.slack):
            screened = points.astype(np.float32) @ self.weight32.T + self.bias32
            full = ~np.all(screened <= -self.slack, axis=1)
        else:
            full = np.zeros(len(points), dtype=bool)
        if not full.any():
            return _outputs_from_first(self.reduced, kept_first), full
        outputs = np.empty((len(points), self.original.output_dim))
        outputs[~full] = _outputs_from_first(self.reduced, kept_first[~full])
        outputs[full] = self.original.forward(points[full])
        return outputs, full


@dataclass
class _Tally:
    """What compared inputs showed: counts, the largest errors and whether every output was within tolerance."""

    n_inputs: int = 0
    n_saved: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    saved_error: float = 0.0
    passed: bool = True

    def add(self, other: _Tally) -> None:
        self.n_inputs += other.n_inputs
        self.n_saved += other.n_saved
        self.max_abs = max(self.max_abs, other.max_abs)
        self.max_rel = max(self.max_rel, other.max_rel)
        self.saved_error = max(self.saved_error, other.saved_error)
        self.passed &= other.passed


def _largest(errors: np.ndarray) -> float:
    """The largest of ``errors`` (>= 0), and inf where any is NaN or inf (a NaN would vanish in a later ``max``)."""
    largest = float(np.max(errors))
    return largest if np.isfinite(largest) else math.inf


@dataclass
class _Comparison:
    """The comparison of one chunk of inputs, as ``verify`` sets it up (see there); safe to run in several
    threads at once (the only state it changes is dropping the screen, which either way gives the same verdict)."""

    original: Network
    compressed: Network
    rows: np.ndarray | None
    screen: _DroppedNeuronScreen | None
    identical: bool
    saved: Network | None
    tolerance: float

    def __call__(self, points: np.ndarray, uniform: bool, saved_rows: int) -> _Tally:
        """Compare at ``points`` (n, dim); the first ``saved_rows`` rows also go into the saved-dtype error."""
        screen = self.screen
        if self.identical:
            reference = outputs = self.original.forward(points)
        elif self.rows is None:
            reference, outputs = self.original.forward(points), self.compressed.forward(points)
        elif screen is not None:
            kept_first = self.compressed.layers[0](points)
            outputs = _outputs_from_first(self.compressed, kept_first)
            reference, full = screen.outputs(points, kept_first)
            if uniform and full.mean() > SCREEN_MAX_FULL_SHARE:
                self.screen = None
        else:
            first = self.original.layers[0](points)
            reference = _outputs_from_first(self.original, first)
            outputs = _outputs_from_first(self.compressed, first[:, self.rows])
        scale = 1.0 + np.abs(reference)
        error = np.abs(reference - outputs)
        tally = _Tally(n_inputs=len(points), max_abs=_largest(error), max_rel=_largest(error / scale),
                       passed=bool(np.all(error <= self.tolerance * scale)))
        take = points[:saved_rows]
        if self.saved is not None and len(take):
            tally.saved_error = _largest(np.abs(reference[: len(take)] - self.saved.forward(take)))
            tally.n_saved = len(take)
        return tally


def verify(
    original: Network,
    compressed: Network,
    domain: Domain,
    *,
    extra_points: np.ndarray | None = None,
    n_samples: int = DEFAULT_SAMPLES,
    rng: np.random.Generator,
    tolerance: float = VERIFY_TOLERANCE,
    saved_dtype: str | None = None,
    threads: int = 1,
    progress: Progress = ignore,
) -> VerificationReport:
    """Compare ``original`` and ``compressed`` outputs in float64 on inputs from ``domain``.

    Inputs: ``n_samples`` uniform draws, corners of every box (all 2^d for d <= 10, else 1024 random
    ones; at most ``MAX_TOTAL_CORNERS`` in all) and the rows of ``extra_points`` (n, dim) that lie in the
    domain (others dropped). A scalar domain is widened to the network's inputs. Passes when every
    output satisfies |y - y'| <= ``tolerance`` * (1 + |y|). The draws are shared evenly among the boxes.
    Cost: chunked float64 matmuls, ``chunk_rows`` rows a pass. With ``threads`` > 1 that many passes run at once,
    each drawn and compared whole in a thread of its own with BLAS kept to one thread (so the draws, the largest
    cost on wide inputs, use every core too; each pass holds its own arrays, every one under
    ``CHUNK_ARRAY_BYTES``); with 1 one pass follows the other, BLAS on its own threads. The draws are the same
    whatever ``threads`` is; when the
    compressed first layer is bitwise a subset of the original's rows (``shared_first_rows``), the first
    product, the dominant one on wide inputs, is computed once for both, and the original's first-layer neurons
    that the compressed net drops are shown <= 0 with a rounding bound (``_DroppedNeuronScreen``: once on the
    whole domain, else per input in float32; where they are certainly <= 0 the original's output is computed
    without them, elsewhere in float64 as before). With ``saved_dtype`` (e.g. "float32") also reports the max
    abs error after rounding the compressed weights to it, on the first ``SAVED_DTYPE_SAMPLES`` draws, the
    corners and the extra points (informational only); without it the report's ``saved_dtype`` is "float64".
    Where rounding to ``saved_dtype`` changes no weight (a float32 model compressed by removals only), that error
    is 0 by construction and no input is spent on it (``n_saved_dtype_inputs`` 0). When ``compressed`` has
    ``original``'s layers bitwise (``same_layers``: nothing was stable enough to change), the comparison cannot
    differ: no uniform draws are compared (with a saved-dtype comparison to make, only its own
    ``SAVED_DTYPE_SAMPLES``), and the report says ``identical``. ``progress`` hears "verifying" with the inputs
    compared so far of all of them, after each pass (the caller names the stage before).
    """
    if (original.input_dim, original.output_dim) != (compressed.input_dim, compressed.output_dim):
        raise ValueError(
            f"networks differ in shape: {original.input_dim}->{original.output_dim} vs "
            f"{compressed.input_dim}->{compressed.output_dim}"
        )
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    domain = domain.broadcast(original.input_dim)
    saved = _as_saved(compressed, saved_dtype) if saved_dtype is not None else None
    saved_unchanged = saved is not None and same_layers(compressed, saved)
    if saved_unchanged:  # rounding to the saved dtype changed no weight: no error to measure
        saved = None
    identical = same_layers(original, compressed)
    n_draws = n_samples
    if identical:  # equal by construction: only the saved-dtype comparison needs draws
        n_draws = min(n_samples, SAVED_DTYPE_SAMPLES) if saved is not None else 0
    rows = shared_first_rows(original, compressed)
    dropping = rows is not None and len(np.unique(rows)) == len(rows) < original.layers[0].out_features
    screen = _DroppedNeuronScreen(original, rows, domain) if dropping else None
    if screen is not None and not screen.usable:
        screen = None
    comparison = _Comparison(original, compressed, rows, screen, identical, saved, tolerance)
    extra = _inside(extra_points, domain) if extra_points is not None else np.empty((0, domain.dim))
    step = chunk_rows(original, compressed)
    fixed_points = [chunk for points in (_domain_corners(domain, rng), extra) for chunk in _in_chunks(points, step)
                    if len(chunk)]
    seed = int(rng.integers(2**63))
    buffers = threading.local()  # one buffer of draws per thread, reused chunk after chunk

    def compare_draws(first_draw: int) -> _Tally:
        if getattr(buffers, "points", None) is None:
            buffers.points = np.empty((min(step, n_draws), domain.dim))
        points = _draw_chunk(buffers.points[: min(step, n_draws - first_draw)], domain, first_draw, n_draws, seed)
        return comparison(points, True, max(0, SAVED_DTYPE_SAMPLES - first_draw))

    tally = _Tally()
    total = sum(len(points) for points in fixed_points) + n_draws
    with contextlib.ExitStack() as stack:
        run = map
        if threads > 1:
            stack.enter_context(threadpool_limits(1))
            run = stack.enter_context(ThreadPoolExecutor(threads, thread_name_prefix="verify")).map
        def parts():  # the draws are submitted once the fixed points are compared (an error stops them unsubmitted)
            yield from run(lambda points: comparison(points, False, len(points)), fixed_points)
            yield from run(compare_draws, range(0, n_draws, step))

        for part in parts():
            tally.add(part)
            progress("verifying", tally.n_inputs, total)
    return VerificationReport(
        n_inputs=tally.n_inputs,
        max_abs_error=tally.max_abs,
        max_rel_error=tally.max_rel,
        tolerance=tolerance,
        passed=tally.passed,
        saved_dtype=saved_dtype or "float64",
        max_abs_error_saved_dtype=tally.saved_error if saved is not None or saved_unchanged else None,
        n_samples=n_samples,
        n_saved_dtype_inputs=tally.n_saved if saved is not None or saved_unchanged else None,
        first_layer_shared=rows is not None,
        identical=identical,
    )
