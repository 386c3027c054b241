"""benchmarks/gpu_reference.py at smoke size on CPU (issue 26): the script that fills Table
XIII's GPU columns and the cost table's hours runs end to end here, so it cannot rot before
a GPU is at hand, and its JSON feeds both readers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from m2ir_lib.core.config import get_profile
from m2ir_lib.workbook import cost, table_xiii

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_reference.py"
NETWORKS = ("m2ir_daclip", "m2ir_none", "restormer", "promptir", "adair")


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_reference")
    done = _run("--smoke", "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "gpu_reference_cpu.json").read_text())


@pytest.mark.slow
def test_smoke_run_measures_every_network_in_both_precisions(smoke):
    env = smoke["env"]
    assert env["device"] == "cpu" and env["torch"] and "cuda" in env and env["preset"] == "smoke"
    assert env["daclip"]  # what stood for DA-CLIP is written down
    assert smoke["complete"] and smoke["stopped"] is None and not smoke["skipped"]
    latency = {(r["model"], r["precision"]): r for r in smoke["latency"]}
    assert set(latency) == {(n, p) for n in NETWORKS for p in ("fp32", "bf16")}
    assert all(r["latency_ms"] > 0 and "error" not in r for r in latency.values())
    train = {(r["model"], r["precision"]): r for r in smoke["train"]}
    assert set(train) == {(n, p) for n in cost.NETWORKS for p in ("fp32", "bf16")}
    for r in train.values():
        assert r["step_s"] > 0 and r["global_batch"] == r["micro_batch"] * r["accumulation"]
        assert r["images_per_s"] == pytest.approx(r["global_batch"] / r["step_s"])


@pytest.mark.slow
def test_its_json_feeds_table_xiii_and_the_cost_table(smoke, tmp_path):
    # the smoke file stands in for a GPU's: same schema, relabelled as the paper networks
    found = json.loads(json.dumps(smoke))
    found["env"].update(preset="paper", device="NVIDIA Test GPU")
    for r in found["latency"]:
        r["gpu_peak_mb"] = r.pop("cpu_peak_mb", 1.0)
    (tmp_path / "gpu_reference_nvidia-test-gpu.json").write_text(json.dumps(found))

    rows = table_xiii.measured_gpu_rows(get_profile("smoke"), folder=tmp_path)
    gpu = rows[rows["metric"] == "latency GPU (ms)"].set_index("method")
    assert set(gpu.index) == set(table_xiii.REFERENCE_LABELS.values())
    assert (gpu["device"] == "NVIDIA Test GPU").all()
    fp32 = {r["model"]: r["latency_ms"] for r in found["latency"] if r["precision"] == "fp32"}
    label = table_xiii.REFERENCE_LABELS["promptir"]
    assert gpu.loc[label, "value"] == pytest.approx(fp32["promptir"])

    df = cost.reproduction_cost(get_profile("paper"), folder=tmp_path).set_index("table")
    assert (df["measured on"] == "NVIDIA Test GPU").all()
    plan = cost.reproduction_plan(get_profile("paper"))
    speed = {r["model"]: r["images_per_s"] for r in found["train"] if r["precision"] == "fp32"}
    hours = plan["iterations"] * plan["global_batch"] / plan["network"].map(speed) / 3600
    assert df.loc["all", "GPU-hours"] == pytest.approx(hours.sum(), rel=1e-3)


@pytest.mark.slow
def test_a_stopped_run_writes_what_it_measured(tmp_path):
    done = _run("--smoke", "--device", "cpu", "--only", "latency", "--max-seconds", "1",
                "--out", str(tmp_path))  # fmt: skip
    assert done.returncode == 1
    found = json.loads((tmp_path / "gpu_reference_cpu.json").read_text())
    assert not found["complete"] and found["stopped"]
    assert len(found["latency"]) + len(found["skipped"]) <= 2 * len(NETWORKS)
