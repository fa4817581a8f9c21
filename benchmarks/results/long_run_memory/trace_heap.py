"""auto on a model, sampled every 10 s from a thread: the process's RSS, glibc's heap (mallinfo2: bytes in use by
malloc, free bytes kept in its arenas, mmapped blocks) and how many PySCIPOpt models are alive; and the first and
last progress line of each engine step, with its time. Separates what the engine holds (in use, SCIP models)
from what the allocator keeps free; where the engine hands the free heap back (``release_free_memory``), each
time with the RSS before and after and how long it took.

    python benchmarks/results/long_run_memory/trace_heap.py out/bench_zoo/d64-2x400-l1_0.pt 1800
        (from the repository root)
"""
import ctypes
import gc
import sys
import threading
import time
import warnings

from exactcompress.allocator import tune_allocator

tune_allocator()
warnings.simplefilter("ignore", FutureWarning)  # gc.get_objects() meets deprecated torch names
import pyscipopt  # noqa: E402

from exactcompress.engine import analyze as analyze_module  # noqa: E402
from exactcompress.engine.analyze import analyze  # noqa: E402
from exactcompress.io import load_network  # noqa: E402
from exactcompress.io.domain_files import scalar_box  # noqa: E402


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
start = time.monotonic()


def rss_mib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))


def sample() -> str:
    heap = libc.mallinfo2()
    models = sum(1 for thing in gc.get_objects() if isinstance(thing, pyscipopt.Model))
    return (f"{time.monotonic() - start:7.1f} s  rss {rss_mib():5d} MiB  malloc in use {(heap.uordblks + heap.hblkhd) >> 20:5d} MiB"
            f"  free in arenas {heap.fordblks >> 20:5d} MiB  mmapped {heap.hblkhd >> 20:5d} MiB  scip models {models}")


def sampler() -> None:
    while True:
        time.sleep(10)
        print(sample(), flush=True)


last_message = [""]


def progress(message: str, done: int | None = None, total: int | None = None) -> None:
    """Each step's first and last line (counted steps report often)."""
    if message != last_message[0] or done is None or done == total:
        last_message[0] = message
        print(f"{time.monotonic() - start:7.1f} s  -- {message}" + ("" if done is None else f" {done}/{total}"), flush=True)


if hasattr(analyze_module, "release_free_memory"):  # engines that hand the free heap back: each time, and its cost
    release = analyze_module.release_free_memory

    def timed_release() -> bool:
        before, began = rss_mib(), time.monotonic()
        released = release()
        print(f"{began - start:7.1f} s  release_free_memory: rss {before} -> {rss_mib()} MiB in "
              f"{1e3 * (time.monotonic() - began):.0f} ms", flush=True)
        return released

    analyze_module.release_free_memory = timed_release
threading.Thread(target=sampler, daemon=True).start()
net, _ = load_network(sys.argv[1])
analysis = analyze(net, scalar_box(0.0, 1.0).broadcast(net.input_dim), method="auto", time_limit=float(sys.argv[2]),
                   threads=2, progress=progress)
print("done:", sample())
