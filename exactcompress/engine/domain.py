"""Input domains: a union of axis-aligned boxes over the network's inputs.

Every domain the tool accepts is a finite union of boxes:
- ``box``: one box, scalar or per-feature bounds (``--lower/--upper`` or ``--domain F``);
- ``data``: the bounding box of a data set, widened by ``margin`` on each side (``--domain-from-data``);
- ``linf-balls``: the union of L∞ balls of radius ε around given points (``--domain F`` with
  ``{"points": ..., "epsilon": ...}``). Each ball is analysed on its own and the results are combined
  with union semantics: a neuron is stable on the union only when it is stable with the same sign on
  every ball.

Reading domains from files and flags is ``io.domain_files``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

#: the largest bound magnitude a box may have: below SCIP's infinity (1e20), so a bound is never read as
#: unbounded, and small enough that widths and the products of bounds with weights stay finite.
MAX_BOUND = 1e15

UNION_SEMANTICS = (
    "The domain is the union of the boxes listed. A neuron is stably active (inactive) on the domain only "
    "if it is proven stably active (inactive) on every box; it is unstable if witnesses of both signs "
    "exist anywhere in the union; otherwise it is undecided and kept."
)


@dataclass(frozen=True)
class Box:
    """Axis-aligned box ``lower <= x <= upper``; arrays of shape (input_dim,), float64, read-only, each bound at most
    ``MAX_BOUND`` in magnitude (ValueError otherwise)."""

    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self) -> None:
        lower = np.array(self.lower, dtype=np.float64).reshape(-1)
        upper = np.array(self.upper, dtype=np.float64).reshape(-1)
        lower.setflags(write=False)
        upper.setflags(write=False)
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        if lower.shape != upper.shape:
            raise ValueError(f"box bounds differ in length: {lower.shape[0]} vs {upper.shape[0]}")
        if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
            raise ValueError("box bounds must be finite")
        for name, bound in (("lower", lower), ("upper", upper)):
            if np.any(np.abs(bound) > MAX_BOUND):
                feature = int(np.argmax(np.abs(bound) > MAX_BOUND))
                raise ValueError(f"'{name}' bound {bound[feature]:g} at feature {feature} exceeds {MAX_BOUND:g} in "
                                 "magnitude, the largest supported")
        if np.any(lower > upper):
            raise ValueError(f"box lower bound exceeds upper bound at feature {int(np.argmax(lower > upper))}")

    def __setstate__(self, state: dict) -> None:
        """Unpickled (or deep-copied) bounds come back writeable: read-only again, as ``__post_init__`` makes them."""
        self.__dict__.update(state)
        self.lower.setflags(write=False)
        self.upper.setflags(write=False)

    @property
    def dim(self) -> int:
        return self.lower.shape[0]

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points uniform in the box, shape (n, dim)."""
        return self.sample_into(np.empty((n, self.dim)), rng)

    def sample_into(self, out: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Overwrite ``out`` (n, dim; C-contiguous float64) with ``n`` points uniform in the box and return it. In
        place, with no temporary arrays: 20,000 fresh points of a 3072-input box cost 0.5-1.5 s here, mostly
        page faults of the temporaries, and 0.2 s drawn into a reused buffer. The unit box [0, 1]^d (the default)
        skips the scale and the shift. The values equal ``sample``'s for the same state of ``rng``."""
        rng.random(out=out)
        width = self.upper - self.lower
        if np.any(width != 1.0):
            out *= width
        if np.any(self.lower != 0.0):
            out += self.lower
        return out

    def clip(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, self.lower, self.upper)

    def contains(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(x)
        return np.all((x >= self.lower) & (x <= self.upper), axis=1)


@dataclass(frozen=True)
class Domain:
    """A union of boxes with a description of where it came from (recorded in the report)."""

    kind: str  # "box" | "data" | "linf-balls"
    boxes: tuple[Box, ...]
    source: str = ""
    margin: float | None = None
    epsilon: float | None = None
    #: the shape of one point in the data or points file the domain was made from, where it had several axes
    point_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", tuple(self.boxes))
        if not self.boxes:
            raise ValueError("a domain needs at least one box")
        dims = {box.dim for box in self.boxes}
        if len(dims) != 1:
            raise ValueError(f"domain boxes have different dimensions: {sorted(dims)}")

    @property
    def dim(self) -> int:
        return self.boxes[0].dim

    def contains(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask (n,) of the rows of ``x`` (n, dim) that lie in the union."""
        return np.any([box.contains(x) for box in self.boxes], axis=0)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points spread over the boxes (equal shares), shape (n, dim)."""
        shares = np.array_split(np.arange(n), len(self.boxes))
        return np.concatenate([box.sample(len(share), rng) for box, share in zip(self.boxes, shares)])

    def check_dim(self, input_dim: int, input_shape: tuple[int, ...] | None = None) -> None:
        """InputError unless the domain has ``input_dim`` features or is a scalar (1-feature) ``box``, and (for a
        network taking (C, H, W) inputs) unless points of several axes it was made from have that shape."""
        if self.dim != input_dim and not (self.kind == "box" and self.dim == 1):
            raise InputError(self.source or "domain", f"has {self.dim} features but the network takes {input_dim} inputs")
        check_point_shape(self.source or "domain", self.point_shape, input_shape)

    def broadcast(self, input_dim: int, input_shape: tuple[int, ...] | None = None) -> "Domain":
        """A scalar (1-feature) ``box`` widened to ``input_dim`` features; others checked and returned."""
        self.check_dim(input_dim, input_shape)
        if self.dim == input_dim:
            return self
        boxes = tuple(Box(np.full(input_dim, b.lower[0]), np.full(input_dim, b.upper[0])) for b in self.boxes)
        return Domain(self.kind, boxes, self.source, self.margin, self.epsilon, self.point_shape)


def point_shape_fits(point_shape: tuple[int, ...] | None, input_shape: tuple[int, ...] | None) -> bool:
    """Whether points of shape ``point_shape`` (several axes; None: flat or unknown), flattened, are inputs of a
    network taking ``input_shape`` in its own layout: the shapes agree but for axes of size 1 ((28, 28) and
    (28, 28, 1) fit (1, 28, 28); (8, 8, 3) does not fit (3, 8, 8))."""
    if point_shape is None or input_shape is None or len(input_shape) < 2:
        return True
    return [size for size in point_shape if size != 1] == [size for size in input_shape if size != 1]


def check_point_shape(source: str, point_shape: tuple[int, ...] | None, input_shape: tuple[int, ...] | None) -> None:
    """InputError naming ``source`` unless ``point_shape_fits``: points flattened in another layout than the
    network's, e.g. channels last, would describe other inputs."""
    if point_shape_fits(point_shape, input_shape):
        return
    raise InputError(source, f"holds points of shape {tuple(point_shape)} but the network takes inputs of shape "
                     f"{tuple(input_shape)} (channels first, as torch); reorder the axes (e.g. "
                     "np.moveaxis(x, -1, 1) for channels last) or flatten in the network's order")
