"""Our Restormer, PromptIR and AdaIR against the authors' own code: same weights, same output?

Needs your clones of the authors' repositories (not part of this project; they need only
torch and einops). Each given network is built by the authors' code with random weights
(perturbed so that AdaIR's α = 0 does not hide its AFLBs), saved as the released files lay
it out (Restormer: BasicSR `params`; PromptIR/AdaIR: Lightning `state_dict`, `net.` prefix),
loaded strictly with `m2ir_lib.core.released.load_released`, and both networks restore the same
random images. Also checks the parameter counts. Networks whose clone is not given are skipped.

    git clone https://github.com/swz30/Restormer; git clone https://github.com/va1shn9v/PromptIR
    git clone https://github.com/c-yn/AdaIR
    OMP_NUM_THREADS=1 python benchmarks/rivals_vs_authors.py --restormer Restormer \\
        --promptir PromptIR --adair AdaIR [--size 64 64] [--tol 1e-5]

Measured (torch 2.14, CPU, 1 thread, 1×3×64×64): max |difference| 1.4e-6 (Restormer),
0.0 (Restormer BiasFree), 7.2e-7 (PromptIR), 1.5e-6 (AdaIR); AdaIR with its low-pass
window made non-empty (n = 8 and 4, 2×3×64×96): 1.4e-6 and 1.5e-6.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m2ir_lib.core.released import convert_released, load_released, released_config
from m2ir_lib.core.rivals import build_rival

ARCH_FILES = {
    "restormer": "basicsr/models/archs/restormer_arch.py",
    "promptir": "net/model.py",
    "adair": "net/model.py",
}


def _module(root: Path, name: str):
    path = root / ARCH_FILES[name]
    if not path.is_file():
        raise SystemExit(f"{path} not found: pass the root of your {name} clone")
    spec = importlib.util.spec_from_file_location(f"authors_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _theirs(mod, variant: str):
    if variant == "restormer":
        return mod.Restormer()
    if variant == "restormer_biasfree":
        return mod.Restormer(LayerNorm_type="BiasFree")
    return mod.PromptIR(decoder=True) if variant == "promptir" else mod.AdaIR(decoder=True)


def _random(net):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return net.eval()


def compare(variant: str, mod, size, batch=1) -> dict:
    """Parameters and max |output difference| of the authors' `variant` and ours."""
    name = variant.split("_")[0]
    theirs = _random(_theirs(mod, variant))
    state = theirs.state_dict()
    released = (
        {"params": state}
        if name == "restormer"
        else {"state_dict": {"net." + k: v for k, v in state.items()}}
    )
    ours = load_released(name, released)
    x = torch.rand(batch, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (theirs(x) - ours(x)).abs().max().item()
    count = [sum(p.numel() for p in n.parameters()) for n in (theirs, ours)]
    return {
        "network": variant,
        "params_theirs": count[0],
        "params_ours": count[1],
        "max_diff": diff,
    }


def compare_adair_window(mod, n: int) -> dict:
    """AdaIR with the low-pass window made non-empty at small sizes (their n=128 -> n)."""
    mod.FreModule.fft.__defaults__ = (n,)  # the authors' fft(self, x, n=128)
    try:
        theirs = _random(_theirs(mod, "adair"))
        state = theirs.state_dict()
        ours = build_rival(dataclasses.replace(released_config("adair", state), freq_n=n)).eval()
        ours.load_state_dict(convert_released(state), strict=True)
        x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            diff = (theirs(x) - ours(x)).abs().max().item()
    finally:
        mod.FreModule.fft.__defaults__ = (128,)
    return {"network": f"adair (n={n})", "max_diff": diff}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ARCH_FILES:
        p.add_argument(f"--{name}", type=Path, default=None, help=f"root of the {name} clone")
    p.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    p.add_argument("--tol", type=float, default=1e-5)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for name in ARCH_FILES:
        root = getattr(a, name)
        if root is None:
            print(f"{name}: skipped (no --{name} clone given)")
            continue
        mod = _module(root, name)
        variants = ["restormer", "restormer_biasfree"] if name == "restormer" else [name]
        rows += [compare(v, mod, a.size) for v in variants]
        if name == "adair":
            rows += [compare_adair_window(mod, n) for n in (8, 4)]
    ok = True
    for r in rows:
        same = r.get("params_theirs", 0) == r.get("params_ours", 0) and r["max_diff"] <= a.tol
        ok &= same
        print({**r, "ok": same})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
