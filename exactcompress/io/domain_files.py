"""Domains and data points from files and flags: scalar boxes, per-feature boxes, data bounding boxes and
unions of L∞ balls (see ``engine.domain`` for the types and the union semantics).

- ``--lower/--upper``: ``scalar_box``;
- ``--domain F``: ``from_file`` (``.npy`` (2, d) rows lower/upper; JSON ``{lower, upper}``; JSON
  ``{points, epsilon}``);
- ``--domain-from-data X.npy [--margin m]``: ``from_data``;
- ``--data X.npy``: ``load_data``.

Data files are ``.npy``, a ``.npz`` with one array, or ``FILE.npz:NAME`` for one array of a ``.npz``.

Every problem is an ``InputError`` naming the file (or flag) and the field.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..engine.domain import Box, Domain, check_point_shape
from ..errors import InputError


def scalar_box(lower: float, upper: float) -> Domain:
    """The box ``[lower, upper]`` on every input feature (widened to the network's input size later)."""
    try:
        box = Box(np.array([lower]), np.array([upper]))
    except ValueError as error:
        raise InputError("--lower/--upper", str(error)) from None
    return Domain("box", (box,), source=f"--lower {lower} --upper {upper}")


def _file_and_array(path: str | Path) -> tuple[str, str | None]:
    """``FILE.npz:NAME`` → (``FILE.npz``, ``NAME``); any other path → (it, None)."""
    source, _, key = str(path).partition(".npz:")
    return (source + ".npz", key) if key else (str(path), None)


def _load_array(path: Path) -> np.ndarray:
    """The finite numeric array in ``path``: a ``.npy`` file, a ``.npz`` holding one array, or ``FILE.npz:NAME``
    for a named array of a ``.npz`` (e.g. ``witnesses.npz:points``); never unpickles."""
    source, key = _file_and_array(path)
    try:
        loaded = np.load(source, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(source, "no such file") from None
    except Exception as error:  # numpy raises many types for bad files
        raise InputError(source, f"cannot read as a .npy or .npz array ({type(error).__name__}: {error})") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            names = list(loaded.files)
            if key is None and len(names) != 1:
                raise InputError(source, f"holds {len(names)} arrays {names}; name one as {source}:NAME")
            if (key or names[0]) not in names:
                raise InputError(source, f"has no array {key!r}; it holds {names}")
            array = loaded[key or names[0]]
    else:
        array = loaded
    return _finite_float64(source, array)


def _finite_float64(source: str, array: np.ndarray) -> np.ndarray:
    """``array`` as float64; InputError naming ``source`` if it is not numeric or holds NaN or Inf."""
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputError(source, f"array has non-numeric dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise InputError(source, "array contains NaN or Inf")
    return array


def data_points(source: str, array: np.ndarray, input_dim: int | None = None,
                input_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Points (n, features), float64, from an array of n points of any shape (one point if 1-D); InputError naming
    ``source`` if it is not numeric, holds NaN or Inf, holds no point or (given ``input_dim``) the wrong width, or
    (given a network's (C, H, W) ``input_shape``) points of several axes in another layout."""
    array = _finite_float64(source, array)
    if array.ndim > 2:
        check_point_shape(source, array.shape[1:], input_shape)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim == 0 or array.shape[0] == 0:
        raise InputError(source, f"array of shape {array.shape} holds no points")
    array = array.reshape(array.shape[0], -1)
    if input_dim is not None and array.shape[1] != input_dim:
        raise InputError(source, f"points have {array.shape[1]} features but the network takes {input_dim} inputs")
    return array


def load_data(path: str | Path, input_dim: int | None = None, input_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Data points from a ``.npy`` / ``.npz`` file (see ``_load_array``), flattened to shape (n, features), float64
    (checked as ``data_points`` checks them)."""
    path = Path(path)
    return data_points(str(path), _load_array(path), input_dim, input_shape)


def load_points(path: Path) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """``load_data(path)`` and the shape of one point where the file's array has several axes per point (for
    ``engine.domain.point_shape_fits``), else None."""
    array = _load_array(path)
    return data_points(str(path), array), (tuple(array.shape[1:]) if array.ndim > 2 else None)


def from_data(path: str | Path, margin: float = 0.0) -> Domain:
    """Bounding box of the points in ``path`` (.npy, (n, features)) widened by ``margin`` on each side."""
    if not np.isfinite(margin) or margin < 0:
        raise InputError("--margin", f"must be a finite number >= 0, got {margin}")
    data, point_shape = load_points(Path(path))
    try:
        box = Box(data.min(axis=0) - margin, data.max(axis=0) + margin)
    except ValueError as error:
        raise InputError(str(path), f"{error} (bounding box widened by --margin {margin})") from None
    return Domain("data", (box,), source=str(path), margin=float(margin), point_shape=point_shape)


def from_file(path: str | Path) -> Domain:
    """A domain file.

    - ``.npy`` of shape (2, d) (or a ``.npz`` holding one, ``FILE.npz:NAME``): rows are lower and upper bounds;
    - ``.json`` ``{"lower": x|[...], "upper": x|[...]}``: scalar or per-feature box;
    - ``.json`` ``{"points": [[...], ...] | "points.npy", "epsilon": ε}``: union of L∞ balls (a relative
      ``points`` path is taken relative to the JSON file).
    """
    path = Path(path)
    source = _file_and_array(path)[0]
    if not Path(source).is_file():
        raise InputError(source, "domain file not found")
    if Path(source).suffix in (".npy", ".npz"):
        array = _load_array(path)
        if array.ndim != 2 or array.shape[0] != 2:
            raise InputError(str(path), f"expected shape (2, features) with rows lower, upper; got {array.shape}")
        return from_bounds(array[0], array[1], str(path))
    try:
        spec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(str(path), f"is neither .npy/.npz bounds nor valid JSON ({type(error).__name__}: "
                         f"{error}); a domain file is a .npy (2, d), or JSON {{lower, upper}} or "
                         "{points, epsilon}") from None
    if not isinstance(spec, dict):
        raise InputError(str(path), "expected a JSON object with lower/upper or points/epsilon")
    unknown = set(spec) - {"lower", "upper", "points", "epsilon"}
    if unknown:
        raise InputError(str(path), f"unknown field(s) {sorted(unknown)}; expected lower/upper or points/epsilon")
    box_fields, ball_fields = sorted(set(spec) & {"lower", "upper"}), sorted(set(spec) & {"points", "epsilon"})
    if box_fields and ball_fields:
        raise InputError(str(path), f"mixes box field(s) {box_fields} with L∞-ball field(s) {ball_fields}; give "
                         "lower/upper or points/epsilon, not both")
    if ball_fields:
        return _balls_domain(path, spec)
    if "lower" not in spec or "upper" not in spec:
        raise InputError(str(path), "needs both 'lower' and 'upper'")
    return from_bounds(spec["lower"], spec["upper"], str(path))


def _numeric(source: str | Path, field: str, value) -> np.ndarray:
    try:
        array = np.atleast_1d(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise InputError(str(source), f"field '{field}' must be a number or a list of numbers") from None
    if not np.all(np.isfinite(array)):
        raise InputError(str(source), f"field '{field}' contains NaN or Inf")
    return array


def from_bounds(lower, upper, source: str) -> Domain:
    """The box ``lower <= x <= upper`` from numbers or flat lists (a scalar pairs with a list); ``source``
    names where the bounds came from in errors and in the report."""
    lower, upper = _numeric(source, "lower", lower), _numeric(source, "upper", upper)
    if lower.ndim != 1 or upper.ndim != 1:
        raise InputError(source, "'lower' and 'upper' must be numbers or flat lists")
    if lower.shape != upper.shape:
        if lower.size == 1:
            lower = np.full(upper.shape, lower[0])
        elif upper.size == 1:
            upper = np.full(lower.shape, upper[0])
        else:
            raise InputError(source, f"'lower' has {lower.size} entries but 'upper' has {upper.size}")
    try:
        box = Box(lower, upper)
    except ValueError as error:
        raise InputError(source, str(error)) from None
    return Domain("box", (box,), source=source)


def _balls_domain(path: Path, spec: dict) -> Domain:
    if "points" not in spec or "epsilon" not in spec:
        raise InputError(str(path), "an L∞-ball domain needs both 'points' and 'epsilon'")
    epsilon = _numeric(path, "epsilon", spec["epsilon"])
    if epsilon.size != 1 or epsilon[0] < 0:
        raise InputError(str(path), "field 'epsilon' must be one number >= 0")
    points = spec["points"]
    if isinstance(points, str):
        points_path = Path(points) if Path(points).is_absolute() else path.parent / points
        try:
            array, point_shape = load_points(points_path)
        except InputError as error:  # the points file's own problem, told as the domain file's field
            raise InputError(str(path), f"field 'points': {error}") from None
    else:
        array, point_shape = _numeric(path, "points", points), None
        array = np.atleast_2d(array)
        if array.ndim != 2:
            raise InputError(str(path), "field 'points' must be a list of points")
        if array.size == 0:
            raise InputError(str(path), "field 'points' holds no points")
    eps = float(epsilon[0])
    try:
        boxes = tuple(Box(point - eps, point + eps) for point in array)
    except ValueError as error:
        raise InputError(str(path), f"{error} (a ball of 'points' ± 'epsilon')") from None
    return Domain("linf-balls", boxes, source=str(path), epsilon=eps, point_shape=point_shape)
