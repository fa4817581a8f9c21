"""exactcompress: exact compression of ReLU networks by proving neuron stability on an input domain.

Public API (imported lazily, so that ``import exactcompress.engine.network`` stays light)::

    from exactcompress import load_network, analyze, compress, compress_model, scalar_box, CompressionReport
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("exactcompress")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+unknown"

_API = {
    "AffineLayer": "engine.network", "Network": "engine.network", "Box": "engine.domain", "Domain": "engine.domain",
    "Analysis": "engine.analyze", "analyze": "engine.analyze", "compress": "engine.compression",
    "compress_model": "pipeline", "load_network": "io", "from_sequential": "io", "scalar_box": "io.domain_files",
    "CompressionReport": "schema",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'exactcompress' has no attribute {name!r}")
