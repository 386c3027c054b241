"""The GPU reference measurement behind Table XIII's GPU columns and the cost table's hours.

    python benchmarks/gpu_reference.py                 # one GPU, paper networks, <= 10 min
    python benchmarks/gpu_reference.py --smoke         # CPU, smoke networks, seconds (tests)

Measures, in this order, on one device with torch's default settings (those of the
training loop):
  1. latency (`speed.measure_latency`, median) and peak memory (`speed.peak_memory`) of one
     720×480 forward, fp32 and bf16 autocast: M²IR with DA-CLIP, M²IR w/o DA-CLIP,
     Restormer, PromptIR and AdaIR (authors' configurations);
  2. seconds per optimizer step of the `paper` profile's training (`speed.measure_train_step`:
     global batch 32 as 4 micro-batches of 8, 128² crops, eq. (11), fused AdamW), fp32 then
     bf16, for M²IR (MLP prior: what the plan trains without DA-CLIP weights), M²IR with
     DA-CLIP and the three rivals.
DA-CLIP: the weights from `--daclip` (default weights/daclip_ViT-B-32.pt) when present, else
the random-weight DA-CLIP structure (same shapes, so the same cost; the JSON says so), else,
without open_clip, the MLP prior stands in, labelled.

Writes `<out>/gpu_reference_<device>.json` (device name, torch, CUDA, cuDNN, every
measurement) atomically after each measurement, so a run stopped by `--max-seconds`,
SIGTERM or Ctrl-C keeps what it measured (`complete` false, `stopped` says why).
`m2ir_lib.workbook.table_xiii.measured_gpu_rows` and `m2ir_lib.workbook.cost` read it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import importlib.util
import json
import re
import signal
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from m2ir_lib.core.config import MODEL_PRESETS, PROFILES  # noqa: E402
from m2ir_lib.core.daclip import DEFAULT_CHECKPOINT  # noqa: E402
from m2ir_lib.core.networks import build_model  # noqa: E402
from m2ir_lib.core.rivals import RIVAL_LABELS, RIVALS, build_rival, rival_config  # noqa: E402
from m2ir_lib.data.files import atomic_write_text, git_commit  # noqa: E402
from m2ir_lib.engine.efficiency import build_variant  # noqa: E402
from m2ir_lib.engine.speed import measure_latency, measure_train_step, peak_memory  # noqa: E402

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
LATENCY_MODELS = ("m2ir_daclip", "m2ir_none", *RIVALS)
TRAIN_MODELS = ("m2ir_mlp", "m2ir_daclip", *RIVALS)
# A DA-CLIP small enough for --smoke: its width is the smoke network's P' width.
SMOKE_CLIP = {
    "embed_dim": MODEL_PRESETS["smoke"].prior_dim,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


class Stopped(BaseException):  # not caught as one failed measurement
    """SIGTERM or the --max-seconds alarm: stop measuring, keep what was measured."""


def _stop(signum, _frame):
    raise Stopped(f"signal {signal.Signals(signum).name}")


def device_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3', the file name's device part."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class Networks:
    """The measured networks by key, with the label and the DA-CLIP provenance of each."""

    # what stands for DA-CLIP -> (the JSON's words, the row label)
    DACLIP = {
        "weights": ("weights: {}", "M²IR (DA-CLIP)"),
        "random": ("weights absent: random-weight DA-CLIP structure (same cost)",
                   "M²IR (random DA-CLIP)"),
        "mlp": ("weights and open_clip absent: the MLP prior stands in",
                "M²IR (MLP prior standing in for DA-CLIP)"),
    }  # fmt: skip

    def __init__(self, preset: str, daclip: Path, smoke: bool):
        self.preset, self.cfg, self.path = preset, MODEL_PRESETS[preset], daclip
        self.clip_cfg = SMOKE_CLIP if smoke else None
        if daclip.is_file() and not smoke:
            self.mode = "weights"
        elif importlib.util.find_spec("open_clip") is not None:
            self.mode = "random"
        else:
            self.mode = "mlp"
        self.daclip = self.DACLIP[self.mode][0].format(daclip.name)

    def label(self, key: str) -> str:
        if key in RIVAL_LABELS:
            return RIVAL_LABELS[key]
        names = {"m2ir_none": "M²IR (w/o DA-CLIP)", "m2ir_mlp": "M²IR (MLP prior)"}
        return names.get(key) or self.DACLIP[self.mode][1]

    def build(self, key: str) -> torch.nn.Module:
        if key in RIVALS:
            return build_rival(rival_config(key, self.preset))
        if key != "m2ir_daclip":
            return build_variant(self.cfg, key.removeprefix("m2ir_"))
        if self.mode == "weights":
            return build_model(dataclasses.replace(self.cfg, prior="daclip"), str(self.path))
        return build_variant(self.cfg, "daclip" if self.mode == "random" else "mlp", self.clip_cfg)


def _free():
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(REPO / "benchmarks" / "measured"), help="folder")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--max-seconds", type=float, default=540, help="stop and write by then")
    p.add_argument("--daclip", default=str(REPO / DEFAULT_CHECKPOINT), help="DA-CLIP weights")
    p.add_argument("--smoke", action="store_true", help="smoke networks, 24×16, tiny batches")
    p.add_argument("--only", nargs="+", choices=["latency", "train"], default=["latency", "train"])
    a = p.parse_args(argv)
    start = time.perf_counter()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGALRM, _stop)
    signal.alarm(max(1, int(a.max_seconds)))  # interrupts a measurement that overruns

    paper = PROFILES["paper"].train
    if a.smoke:  # every code path at toy size, once: global batch 2 = 2 micro-batches of 1
        preset, size, reps = "smoke", (16, 24), dict(warmup=0, repeats=1)
        tc, steps = dataclasses.replace(paper, batch_size=1, grad_accum=2, patch=16), (0, 1)
        torch.set_num_threads(1)  # a second spinning thread only waits on a shared CPU
    else:  # the paper's 720×480 and the `paper` profile's step (3 timed after 1 warm-up)
        preset, size, reps = "paper", (480, 720), dict(warmup=2, repeats=5)
        tc, steps = paper, (1, 3)
    nets = Networks(preset, Path(a.daclip), a.smoke)
    cuda = torch.device(a.device).type == "cuda"
    device = torch.cuda.get_device_name(a.device) if cuda else "cpu"
    found = {
        "env": {
            "device": device,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "threads": torch.get_num_threads(),
            "preset": preset,
            "size": f"{size[1]}x{size[0]}",
            "daclip": nets.daclip,
            "train": {
                "patch": tc.patch,
                "micro_batch": tc.batch_size,
                "accumulation": tc.grad_accum,
                "global_batch": tc.global_batch,
                "data": "fixed random tensors (no data loading)",
            },
            "commit": git_commit(REPO, short=True),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "command": " ".join(["benchmarks/gpu_reference.py", *(argv or sys.argv[1:])]),
        },
        "latency": [],
        "train": [],
        "skipped": [],
        "complete": False,
        "stopped": None,
    }
    out = Path(a.out) / f"gpu_reference_{device_slug(device)}.json"

    def write():
        found["wall_s"] = round(time.perf_counter() - start, 1)
        atomic_write_text(json.dumps(found, indent=1, ensure_ascii=False), out)

    def latency(key, prec, model):
        amp = PRECISIONS[prec]
        ms = measure_latency(model, size, a.device, amp_dtype=amp, **reps)
        return {"latency_ms": ms, **peak_memory(model, size, a.device, amp)}

    def train(key, prec, model):
        return measure_train_step(model, tc, a.device, PRECISIONS[prec], steps[1], steps[0])

    work = [("latency", k, prec, latency) for k in LATENCY_MODELS for prec in PRECISIONS]
    work += [("train", k, prec, train) for prec in PRECISIONS for k in TRAIN_MODELS]
    work = [w for w in work if w[0] in a.only]
    section, what = "start", {}  # what a stop interrupted
    try:
        for section, key, prec, fn in work:
            what = {"model": key, "label": nets.label(key), "precision": prec}
            if time.perf_counter() - start > a.max_seconds:
                found["skipped"].append({**what, "section": section, "why": "--max-seconds"})
                continue
            t0 = time.perf_counter()
            try:
                torch.manual_seed(0)
                model = nets.build(key).to(a.device)
                row = {**what, "params_M": sum(p.numel() for p in model.parameters()) / 1e6}
                row.update(fn(key, prec, model))
            except Exception as err:  # e.g. out of memory: one row lost, not the others
                row = {**what, "error": f"{type(err).__name__}: {err}"[:400]}
            finally:
                model = None
                _free()
            row["seconds"] = round(time.perf_counter() - t0, 1)  # build + measure: plans
            found[section].append(row)
            print(section, json.dumps(row, ensure_ascii=False), flush=True)
            write()
        failed = [r for r in found["latency"] + found["train"] if "error" in r]
        found["complete"] = not found["skipped"] and not failed
        if found["skipped"]:
            found["stopped"] = f"--max-seconds {a.max_seconds:g} spent"
    except (Stopped, KeyboardInterrupt) as why:
        found["stopped"] = f"{str(why) or type(why).__name__} during {section} of {what}"
    finally:
        signal.alarm(0)
        write()
    print(out)
    return 0 if found["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
