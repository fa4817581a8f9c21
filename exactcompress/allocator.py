"""glibc malloc settings for exactcompress processes.

The engine allocates and frees float64 arrays and tensors of 16-256 MiB at every step (verification passes,
branch-and-bound batches of domains × queries × inputs). By default glibc maps every block over 32 MiB afresh
from the kernel and returns it on free, so each step page-faults its memory in again: on a 3072-input 5x100
net, branch and bound spent 20.8 s of 64 s in the kernel, and bounded 137 domains in 60 s instead of 173
with the settings below. With them, freed blocks up to 256 MiB are reused from the heap, and up to 512 MiB
of free heap is kept before it is returned; larger blocks are still mapped and returned as before.

That free heap is kept per arena (glibc gives threads arenas of their own), so between the engine's phases a
process can hold several times 512 MiB it no longer uses: ``release_free_memory`` hands it back.
"""

from __future__ import annotations

import ctypes
import os
from typing import Mapping, MutableMapping

#: environment variables glibc reads at process start, and their values here (bytes)
SETTINGS = {"MALLOC_MMAP_THRESHOLD_": 256 * 2**20, "MALLOC_TRIM_THRESHOLD_": 512 * 2**20}
#: the ``mallopt`` parameter of each setting (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD)
MALLOPT_PARAMETERS = {"MALLOC_MMAP_THRESHOLD_": -3, "MALLOC_TRIM_THRESHOLD_": -1}


def allocator_environment(environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings as environment variables, for processes started elsewhere (e.g. Ray workers of a
    cluster); a value already in ``environment`` (default: this process's) is kept as the user set it."""
    environment = os.environ if environment is None else environment
    return {name: environment.get(name, str(value)) for name, value in SETTINGS.items()}


def tune_allocator(environment: MutableMapping[str, str] | None = None) -> bool:
    """Apply the settings to this process (glibc ``mallopt``) and put them in ``environment`` (default:
    ``os.environ``) for the processes it starts later; a setting the user made there is kept. Returns whether
    this process's allocator took them (False where libc is not glibc)."""
    environment = os.environ if environment is None else environment
    settings = allocator_environment(environment)
    environment.update(settings)
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    values = {name: value for name, value in settings.items() if value.isdigit()}  # glibc ignores others too
    return len(values) == len(settings) and all(mallopt(MALLOPT_PARAMETERS[name], int(value)) == 1
                                                for name, value in values.items())


def release_free_memory() -> bool:
    """Hand the free memory that glibc keeps in all its arenas back to the kernel (``malloc_trim(0)``); what is
    in use stays. Returns whether any was released (False where libc is not glibc). Meant for the ends of
    phases (a round of branch and bound, the single MILP), not for every step: the next step page-faults its
    memory in again, the cost the settings above avoid within a phase."""
    try:
        malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    return malloc_trim(0) == 1
