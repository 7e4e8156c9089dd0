"""A job's process keeps the memory a forward pass frees for the next pass instead of faulting it in again."""

from __future__ import annotations

import subprocess
import sys

# Passes of a block shaped like PaDiM's backbone at batch 8 (a 1x1 expansion to 96 channels at 128 x 128: 48 MB of
# activations per layer), in a process of its own: page faults over the passes after the first two.
PROBE = """
import resource, sys, torch
from engine.heap import keep_freed_memory
torch.set_num_threads(1)
if sys.argv[1] == "kept":
    assert keep_freed_memory()
block = torch.nn.Sequential(
    torch.nn.Conv2d(32, 96, 1), torch.nn.ReLU6(), torch.nn.Conv2d(96, 96, 3, padding=1, groups=96),
    torch.nn.Conv2d(96, 32, 1),
).eval()
images = torch.randn(8, 32, 128, 128)
faults = []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with torch.inference_mode():
        block(images)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(sum(faults[2:]))
"""


def page_faults(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1])


def test_memory_a_pass_frees_is_mostly_reused_by_the_next_instead_of_faulted_in_again():
    plain, kept = page_faults("plain"), page_faults("kept")
    assert plain > 6 * 3 * 12288  # glibc maps each 48 MB activation afresh and unmaps it on free, every pass
    assert kept < plain / 4, (plain, kept)
