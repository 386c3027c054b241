"""``python -m m2ir_lib.efficiency``: parameters and MACs of one network (Table XIII, §IV-E).

    python -m m2ir_lib.efficiency --model m2ir --config paper --daclip daclip
    python -m m2ir_lib.efficiency --model promptir --config paper --json

The counting convention is `m2ir_lib.engine.efficiency.CONVENTION` (docs/readings.md §1).
"""

from __future__ import annotations

import argparse
import json

import torch

from m2ir_lib.core.config import MODEL_PRESETS
from m2ir_lib.data.files import cli_logging, user_errors
from m2ir_lib.engine.efficiency import (
    CONVENTION,
    DACLIP_MODES,
    DACLIP_PRIOR_DIM,
    MODELS,
    count_complexity,
    count_rival,
)


def main(argv=None):
    """`python -m m2ir_lib.efficiency [--model m2ir|restormer|promptir|adair] --config paper
    [--daclip none|mlp|daclip] [--json]`; --config is the size preset of any --model."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="m2ir", choices=MODELS)
    parser.add_argument("--config", default="paper", choices=sorted(MODEL_PRESETS))
    parser.add_argument("--daclip", default="none", choices=DACLIP_MODES)
    parser.add_argument("--size", type=int, nargs=2, default=(480, 720), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="M²IR's network MACs from three small inputs (exact; seconds, not minutes)",
    )
    args = parser.parse_args(argv)
    if min(args.size) < 5:
        parser.error(f"--size {args.size[0]} {args.size[1]}: H and W must be at least 5 pixels")
    cli_logging()
    if args.daclip != "none" and args.model != "m2ir":
        parser.error(f"--daclip {args.daclip}: {args.model} takes no prior")
    width = MODEL_PRESETS[args.config].prior_dim
    if args.daclip == "daclip" and width != DACLIP_PRIOR_DIM:
        parser.error(
            f"--daclip daclip: DA-CLIP's prior is {DACLIP_PRIOR_DIM} wide, the {args.config} "
            f"network takes {width}; use --config paper, or --daclip mlp|none"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    with user_errors(parser.prog):
        if args.model == "m2ir":
            size = tuple(args.size)
            out = count_complexity(args.config, args.daclip, size, extrapolate=args.fast)
        else:
            out = count_rival(args.model, args.config, tuple(args.size))
    if args.json:
        print(json.dumps(out))
        return
    print(
        f"{args.model} ({args.config}), daclip={args.daclip}, {args.size[1]}x{args.size[0]} "
        f"({CONVENTION}):"
    )
    for key, value in out.items():
        print(f"  {key:27} {value:,}" if isinstance(value, int) else f"  {key:27} {value}")


if __name__ == "__main__":
    main()
