"""Entry points keep large CPU tensors in the heap (``biornn.core.config.start`` -> ``tune_allocator``); BIORNN_MALLOC
opts
out; ``import biornn`` alone leaves the allocator as it is."""

import os
import subprocess
import sys

import pytest

from biornn.core.config import tune_allocator

# RSS (MB) before, while holding and after freeing a 256 MB tensor, in a fresh interpreter.
PROBE = """
import os, sys, torch
import biornn, biornn.cli, biornn.nn.train
from biornn.core.config import start
tuned = None
if sys.argv[1] == "start":
    mode = start()
    from biornn.core.config import tune_allocator
    tuned = tune_allocator()  # idempotent: says whether start() could tune it
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
before = rss()
x = torch.ones(64 * 2 ** 20)
held = rss()
del x
print(tuned, round(before), round(held), round(rss()))
"""


def _probe(choice: str, how: str = "start") -> tuple[str, float, float, float]:
    env = {**os.environ, "BIORNN_MALLOC": choice}
    out = subprocess.run([sys.executable, "-c", PROBE, how], env=env, capture_output=True, text=True,
                         check=True).stdout
    tuned, *mb = out.split()
    return tuned, *(float(v) for v in mb)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux)")
def test_heap_keeps_a_freed_large_tensor_and_system_returns_it():
    tuned, before, held, after = _probe("heap")
    assert tuned == "True" and held - before > 200
    assert after - before > 200  # freed, but kept in the process for the next allocation: no page faults again
    tuned, before, held, after = _probe("system")
    assert tuned == "False" and held - before > 200
    assert after - before < 50  # glibc's mmap chunk went back to the system


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux)")
def test_import_biornn_leaves_the_allocator_and_environment_alone():
    """Only an entry point (``biornn.core.config.start``) tunes the process; importing the package changes nothing."""
    tuned, before, held, after = _probe("heap", how="import")
    assert tuned == "None" and held - before > 200
    assert after - before < 50  # the freed tensor went back to the system: the allocator was not touched
    code = ("import os; e = dict(os.environ); import biornn, biornn.cli, biornn.nn.train, biornn.experiments.fig2, "
            "biornn.data.curate, biornn.celltype, biornn.plotting; print(dict(os.environ) == e)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "True"


def test_unknown_malloc_choice_warns_in_one_line_and_leaves_the_allocator(monkeypatch):
    monkeypatch.setenv("BIORNN_MALLOC", "jemalloc")
    with pytest.warns(UserWarning, match="BIORNN_MALLOC='jemalloc' is not heap or system"):
        assert tune_allocator() is False
