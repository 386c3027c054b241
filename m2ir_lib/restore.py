"""``python -m m2ir_lib.restore INPUT... --checkpoint CKPT --out DIR``: restore images with
a trained checkpoint (the all-in-one use of §I). What it guarantees (tiling, nothing
overwritten, a bad file named and skipped) is said in `m2ir_lib.engine.restore`.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import torch
from PIL import Image

from m2ir_lib.data.files import cli_logging
from m2ir_lib.engine.checkpoint import load_checkpoint
from m2ir_lib.engine.restore import check_tile, collect_inputs, plan_outputs, restore_files


def main(argv=None) -> int:
    """CLI entry point; exit status 1 when any input could not be read."""
    p = argparse.ArgumentParser(description="Restore images with an M²IR checkpoint.")
    p.add_argument("inputs", nargs="+", help="image files and/or folders")
    p.add_argument("--checkpoint", required=True, help="final.pt of a training run")
    p.add_argument("--out", required=True, help="output folder (PNG files)")
    p.add_argument("--tile", type=int, default=512, help="tile side for large images")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--daclip", default=None, help="daclip_ViT-B-32.pt if the model needs it")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        help="read images up to this many pixels (Pillow's decompression-bomb limit; "
        f"default {Image.MAX_IMAGE_PIXELS:,}); only for files you trust",
    )
    a = p.parse_args(argv)
    cli_logging()
    try:
        check_tile(a.tile, a.overlap)
        if a.max_pixels is not None and a.max_pixels < 1:
            raise ValueError(f"--max-pixels {a.max_pixels}: give a positive number")
        # Every input and output checked before loading the network: nothing half done.
        plan_outputs(collect_inputs(a.inputs), Path(a.out), a.overwrite)
        try:
            model, _ = load_checkpoint(a.checkpoint, a.daclip, a.device)
        except (OSError, RuntimeError, EOFError, KeyError, pickle.UnpicklingError) as e:
            raise ValueError(f"cannot load checkpoint {a.checkpoint}: {e}") from None
        written, failed = restore_files(
            model,
            a.inputs,
            a.out,
            tile=a.tile,
            overlap=a.overlap,
            device=a.device,
            overwrite=a.overwrite,
            max_pixels=a.max_pixels,
        )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except FloatingPointError as e:  # the output was NaN: the weights, not the image, are bad
        print(f"error: checkpoint {a.checkpoint}: {e}; nothing more was written", file=sys.stderr)
        return 1
    for reason in failed.values():
        print(f"error: {reason}", file=sys.stderr)
    print(
        f"restored {len(written)} image(s) into {a.out}"
        + (f"; {len(failed)} skipped (named above)" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
