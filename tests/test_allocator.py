"""glibc malloc settings: applied to this process and passed on to the processes it starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from exactcompress.allocator import SETTINGS, allocator_environment, tune_allocator

#: a child that allocates and touches a 64 MiB array, frees it (and releases the free heap), and prints how much
#: of it left its memory
ALLOCATE_AND_FREE = """
import os, sys
import numpy as np
if sys.argv[1] in ("tuned", "released"):
    from exactcompress.allocator import release_free_memory, tune_allocator
    assert tune_allocator()
def resident() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
block = np.ones(8 * 2**20)
holding = resident()
del block
if sys.argv[1] == "released":
    assert release_free_memory()
print(holding - resident())
"""


def test_settings_go_into_the_environment_and_a_users_own_value_is_kept():
    environment = {"MALLOC_TRIM_THRESHOLD_": "1048576"}
    assert allocator_environment(environment) == {"MALLOC_MMAP_THRESHOLD_": str(SETTINGS["MALLOC_MMAP_THRESHOLD_"]),
                                                  "MALLOC_TRIM_THRESHOLD_": "1048576"}
    tune_allocator(environment)
    assert environment == allocator_environment({"MALLOC_TRIM_THRESHOLD_": "1048576"})
    assert tune_allocator({"MALLOC_MMAP_THRESHOLD_": "lots"}) is False  # not a number: not applied here either


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt, /proc")
def test_a_freed_64_mib_block_stays_for_reuse_until_the_free_heap_is_released():
    def returned(mode: str) -> int:
        environment = {name: value for name, value in os.environ.items() if name not in SETTINGS}
        run = subprocess.run([sys.executable, "-c", ALLOCATE_AND_FREE, mode], capture_output=True, text=True,
                             check=True, env=environment)
        return int(run.stdout)

    assert returned("default") >= 60 * 2**20  # unmapped at once: the next such block is page-faulted in anew
    assert returned("tuned") <= 4 * 2**20  # kept in the heap for the next block
    assert returned("released") >= 60 * 2**20  # until the phase ends and the free heap is handed back
