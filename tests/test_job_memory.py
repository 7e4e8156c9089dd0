"""Memory of a job: PatchCore's coreset stays flat, and a job over its memory budget fails alone."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main as gluelab
from engine.jobs import Job
from store.runs import run_metrics, runs
from tests.conftest import generated_store

pytestmark = pytest.mark.heavy  # a PatchCore job on 100 images

# Runs one real PatchCore job (cpu preset) and prints the process's resident set after every coreset round, with
# rounds of at most 4 picks so that there are many of them.
CORESET_JOB = """
import json, os, sys
from pathlib import Path
from engine.evaluation.evaluate import evaluate_job
from engine.jobs import Job
from engine.ingest.part_data import load_part
from engine.models.patchcore import model as patchcore

resident, patches = [], []
apply_centres = patchcore._apply_centres

def sampled_round(features, norms, centres, nearest):
    apply_centres(features, norms, centres, nearest)
    patches[:] = [features.shape[0]]
    with open("/proc/self/statm") as statm:
        resident.append(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))

patchcore._apply_centres = sampled_round
patchcore.FastKCenterGreedy.greedy = staticmethod(lambda f, size, first: patchcore.greedy_in_rounds(f, size, first, 4))
store = Path(sys.argv[1])
data = load_part("part1", store)
# A learning-curve point at all of the part's training images: the full run's fit on the same images in the same order,
# and the test images scored, without the timing windows a learning-curve job skips (this test measures the fit).
job = Job("part1", "patchcore", "tf_efficientnet_lite0", "cpu", 0, "baseline", train_size=len(data.train))
outcome = evaluate_job(job, data, Path(f"{store}.artifacts"))
print(json.dumps({"resident": resident, "patches": patches[0], "image_auroc": outcome.metrics["image_auroc"]}))
"""


@pytest.fixture(scope="module")
def store_100(tmp_path_factory) -> Path:
    """part1 with 100 images: 60 training images, 61,440 patches at 256x256, 614 coreset steps at `cpu`."""
    return generated_store(tmp_path_factory.mktemp("job_memory"), images=100)


def test_patchcore_coreset_memory_stays_flat_round_after_round_in_a_real_job(store_100):
    """A 761-image part grew by one distance vector per coreset step (3 MB) until the machine ran out.

    The vectors came from glibc's heap: once a job has freed buffers of up to 32 MB (its feature batches),
    glibc raises its mmap threshold to that size. Each step's kept index then split the hole a temporary had
    left, and the heap grew. A small part keeps its heap in a different state, so this job starts with the
    threshold where a large part's job ends up (GLIBC_TUNABLES), and 614 steps of 240 KB vectors would leak
    about 140 MB. The selection picks in rounds; here each round picks at most 4 patches, so there are over 150.
    """
    environment = {**os.environ, "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=33554432"}
    result = subprocess.run(
        [sys.executable, "-c", CORESET_JOB, str(store_100)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    resident = np.array(report["resident"], dtype=float)
    vector = 4 * report["patches"]
    assert len(resident) >= 150
    settled = resident[len(resident) // 10 :]  # after the first steps, which set up buffers
    growth_per_step = np.polyfit(np.arange(len(settled)), settled, 1)[0]
    assert growth_per_step < 0.05 * vector, (growth_per_step, vector, settled[0], settled[-1])
    assert settled.max() - settled[0] < 20 * 2**20, (settled[0], settled.max())
    assert 0 <= report["image_auroc"] <= 1


@pytest.fixture
def store_25(tmp_path) -> Path:
    return generated_store(tmp_path)


def test_a_job_over_its_memory_budget_fails_alone_with_the_reason_and_the_grid_goes_on(store_25, capsys):
    """The budget is set 200 MB above what the legacy check was measured to need: PaDiM, which holds a CNN and
    its features besides, goes over it and is stopped; the legacy job after it in the same grid finishes."""
    arguments = ["evaluate", "--parts", "part1", "--store", str(store_25)]
    assert gluelab([*arguments, "--models", "legacy"]) == 0
    legacy_mb = runs(store_25).peak_memory_mb.iloc[0]
    budget_gb = round((legacy_mb + 200) / 1024, 2)

    assert (
        gluelab([*arguments, "--models", "padim", "legacy", "--seeds", "2", "--memory-budget-gb", str(budget_gb)]) == 1
    )
    output = capsys.readouterr()
    table = runs(store_25).set_index("run_id")
    padim = table.loc[Job("part1", "padim", "tf_efficientnet_lite0", "cpu", 0, "baseline").run_id]
    assert padim.status == "failed", padim.to_dict()
    assert re.fullmatch(rf"exceeded its memory budget of {budget_gb:.1f} GB at \d+\.\d GB \(.*\)", padim.error)
    assert "failed: part1 padim/tf_efficientnet_lite0 seed 0 baseline: exceeded its memory budget" in output.out
    second_legacy = table.loc[Job("part1", "legacy", "", "cpu", 1, "baseline").run_id]
    assert second_legacy.status == "finished" and second_legacy.peak_memory_mb < budget_gb * 1024
    assert set(run_metrics(store_25).run_id) == set(table.index[table.status == "finished"])
