"""The project's one image decoder (`load_image`), strict about damaged files.

Every image read by data preparation's full verification, training, scoring and restoration
goes through `load_image` (re-exported by `m2ir_lib.data.datasets`). Pillow decodes a JPEG
whose scan data is damaged (bytes overwritten mid-file) without a word: libjpeg only *warns*
("Corrupt JPEG data: ..."), Pillow silences those warnings, and the garbled pixels pass as an
image. `jpeg_damage` decodes the bytes a second time with torchvision's libjpeg, whose
warnings reach the process's stderr, reads them there and turns them into `ImageReadError`
naming the file. The check costs about a third of Pillow's decode (11 ms against 35 ms for
a 1920×1080 JPEG on one core), once per file and process (`_INTACT`).
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

# libjpeg's warnings that mean damaged data (jerror.h JWRN_*); others ("unknown JFIF
# revision", a thumbnail's size) are harmless and passed on to stderr.
_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG file", "Inconsistent progression")
_STDERR_LOCK = threading.Lock()  # fd 2 is redirected while libjpeg runs: one thread at a time
# JPEGs found intact, by (path, size, mtime): training draws each file many times, and the
# second decode is checked once per file and process, again only when the file changes.
_INTACT: set[tuple[str, int, int]] = set()


class ImageReadError(OSError):
    """An image file that cannot be decoded (missing, corrupt, truncated, unsupported mode)."""


def jpeg_damage(data: bytes) -> str:
    """libjpeg's warnings about damaged data while decoding the JPEG `data`; "" when clean."""
    import torchvision.io  # heavy optional dependency: only JPEG files need it

    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)  # libjpeg prints its warnings with fprintf(stderr)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torchvision's deprecation notice
                try:
                    torchvision.io.decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))
                except RuntimeError:
                    pass  # a JPEG Pillow reads but torchvision cannot (e.g. CMYK): not checked
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        lines = sink.read().decode(errors="replace").splitlines()
    harmless = [x for x in lines if not x.startswith(_DAMAGE)]
    if harmless:
        print("\n".join(harmless), file=sys.stderr)
    return "; ".join(x for x in lines if x.startswith(_DAMAGE))


def load_image(path: str | os.PathLike, orient: bool = False) -> np.ndarray:
    """One image as 8-bit RGB, (H, W, 3) uint8; the single decoder of the project.

    Conversions (documented in `m2ir_lib.data.datasets`): gray/palette → replicated RGB, alpha
    dropped, 16-bit → high byte. Truncated or corrupt files (a JPEG libjpeg calls corrupt
    included, `jpeg_damage`), and files above Pillow's decompression-bomb limit, raise
    `ImageReadError` naming the file (Pillow's lenient ``LOAD_TRUNCATED_IMAGES`` is never used).

    Args:
        path: image file.
        orient: apply the EXIF orientation tag (phone photos, ``m2ir_lib.restore``). Data sets
            are read as stored, as the peers read them, so pairs keep their alignment.
    """
    path = Path(path)
    try:
        st = path.stat()
        stamp = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.format in ("JPEG", "MPO") and stamp not in _INTACT:
                if damage := jpeg_damage(data):
                    raise ImageReadError(
                        f"{path}: corrupt JPEG ({damage}); its pixels would be garbled. "
                        "Replace the file with an intact copy (download or copy it again)."
                    )
                _INTACT.add(stamp)
            if orient:
                im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                # 16-bit gray: keep the high byte, the rule Pillow applies to 16-bit RGB.
                v = np.asarray(im).astype(np.uint32) >> 8
                gray = np.clip(v, 0, 255).astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=2)
            if im.mode == "F":
                raise ImageReadError(f"{path}: 32-bit float images are not supported")
            if im.mode in ("LA", "PA"):
                im = im.convert("L")
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except Image.DecompressionBombError as err:
        raise ImageReadError(f"{path}: too many pixels to open safely ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: cannot decode image ({err})") from err
