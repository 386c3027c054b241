"""Finding, pairing and checking image files on disk: the machinery behind every adapter.

A data set on disk is described by `Layout`s (published folder trees, see `adapters`), each a
list of `Source`s: a clean folder, optionally a degraded folder, and how file names pair.
`find` tries the layouts in order and returns a `Part` (the pairs, plus every file it had to
leave out and why); `check_images` then opens every image (`data_prep.prepare` compares the
counts with the published sizes). Nothing is silent: each dropped file is an `Issue` that ends
up in the report.
"""

from __future__ import annotations

import fnmatch
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from m2ir_lib.data.datasets import ImageReadError, load_image

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VERIFY_LEVELS = ("quick", "full", "none")
ON_BAD = ("stop", "skip")


class LayoutError(FileNotFoundError):
    """No accepted folder layout was found; the message shows the expected trees."""


class BadImageError(ValueError):
    """A corrupt, truncated, mismatched or too small image met with ``on_bad='stop'``."""


class CountError(ValueError):
    """Found a different number of pairs than the data set publishes."""


class PartialDataWarning(UserWarning):
    """A missing or short data set accepted because of ``allow_partial``."""


# ---------------------------------------------------------------------------------------------
# Pairing keys: file path -> the string that must match between degraded and clean
# ---------------------------------------------------------------------------------------------


def stem(path: Path) -> str:
    """Same name up to the extension (``1.png`` ↔ ``1.jpg``)."""
    return path.stem.lower()


def digits(path: Path) -> str:
    """The last run of digits as an integer: ``rain-001`` ↔ ``norain-1`` ↔ ``1`` (Rain100L)."""
    found = re.findall(r"\d+", path.stem)
    return str(int(found[-1])) if found else path.stem.lower()


def scene_id(path: Path) -> str:
    """Text before the first ``_``: RESIDE ``0001_0.8_0.2.jpg`` ↔ ``0001.png``."""
    return path.stem.split("_")[0].lower()


def sequence_frame(path: Path) -> str:
    """GoPro original tree ``GOPR0384_11_00/blur/000001.png`` → ``gopr0384_11_00_000001``."""
    return f"{path.parent.parent.name}_{path.stem}".lower()


KEYS: dict[str, Callable[[Path], str]] = {
    "stem": stem,
    "digits": digits,
    "id": scene_id,
    "sequence_frame": sequence_frame,
}


# ---------------------------------------------------------------------------------------------
# Layout descriptions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One group of files in a layout: a clean folder and, unless noise is added on the fly,
    a degraded folder. Folder patterns are '/'-separated, case-insensitive, with ``*`` and
    ``{a,b}`` alternatives (``.`` = this folder)."""

    split: str
    task: str
    dataset: str
    clean: str
    degraded: str | None = None
    clean_files: tuple[str, ...] = ("*",)
    degraded_files: tuple[str, ...] = ("*",)
    clean_exclude: tuple[str, ...] = ()  # e.g. WED's *.bmp beside BSD400 in PromptIR's folder
    key: str = "stem"
    one_to_one: bool = True  # False: many degraded per clean image (RESIDE OTS: 35)
    expected: int | None = None  # published number of pairs (None: not published)

    def describe(self) -> str:
        clean = f"{self.clean}/{'|'.join(self.clean_files)}"
        if self.degraded is None:
            return f"{clean}   (clean only; noise added on the fly)"
        n = f"  [{self.expected}]" if self.expected else ""
        return f"{self.degraded}/{'|'.join(self.degraded_files)}  <->  {clean}   (by {self.key}){n}"


@dataclass(frozen=True)
class Layout:
    """A published folder tree of one data set (part)."""

    name: str
    sources: tuple[Source, ...]
    totals: tuple[tuple[str, int], ...] = ()  # expected pairs per split, when only totals exist

    def describe(self) -> str:
        return "\n".join([f"  {self.name}:"] + [f"      {s.describe()}" for s in self.sources])


@dataclass(frozen=True)
class Pair:
    split: str
    task: str
    dataset: str
    clean: Path
    degraded: Path | None  # None: clean only, noise on the fly


@dataclass(frozen=True)
class Issue:
    kind: str  # unpaired | ambiguous | corrupt | size-mismatch | too-small | ignored
    path: str
    detail: str


@dataclass
class Part:
    """One data set part as found: its pairs and what was noticed while finding them."""

    name: str
    layout: Layout
    base: Path
    pairs: list[Pair]
    issues: list[Issue] = field(default_factory=list)
    converted: dict[str, str] = field(default_factory=dict)  # path -> grayscale/alpha/16-bit
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Folder and file discovery
# ---------------------------------------------------------------------------------------------


def _alternatives(component: str) -> list[str]:
    m = re.fullmatch(r"\{(.*)\}", component)
    return m.group(1).split(",") if m else [component]


def resolve(base: Path, pattern: str) -> list[Path]:
    """Folders under ``base`` matching ``pattern`` (case-insensitive per component), sorted."""
    current = [base]
    for component in pattern.strip("/").split("/"):
        nxt = []
        for folder in current:
            for alt in _alternatives(component):
                if alt == ".":
                    nxt.append(folder)
                    continue
                try:
                    entries = sorted(os.scandir(folder), key=lambda e: e.name)
                except OSError:
                    continue
                nxt += [
                    Path(e.path)
                    for e in entries
                    if e.is_dir() and fnmatch.fnmatch(e.name.lower(), alt.lower())
                ]
        current = list(dict.fromkeys(nxt))
    return sorted(current)


def list_images(
    folders: list[Path], patterns: tuple[str, ...], exclude: tuple[str, ...] = ()
) -> tuple[list[Path], int, int]:
    """Image files directly in ``folders`` whose name matches a pattern (and no ``exclude``),
    the number of non-image or hidden files ignored, and of other images not matched."""
    files, ignored, unmatched = [], 0, 0
    for folder in folders:
        for e in sorted(os.scandir(folder), key=lambda e: e.name):
            if not e.is_file():
                continue
            name = e.name.lower()
            if name.startswith(".") or not name.endswith(IMAGE_EXTS):
                ignored += 1
            elif any(fnmatch.fnmatch(name, p.lower()) for p in exclude):
                continue
            elif any(fnmatch.fnmatch(name, p.lower()) for p in patterns):
                files.append(Path(e.path))
            else:
                unmatched += 1
    return files, ignored, unmatched


def _pair_source(src: Source, base: Path, part: Part) -> None:
    """Pair one source's files into ``part`` and record what stayed unpaired."""
    clean, ignored, _ = list_images(resolve(base, src.clean), src.clean_files, src.clean_exclude)
    if src.degraded is None:
        part.pairs += [Pair(src.split, src.task, src.dataset, c, None) for c in clean]
    else:
        key = KEYS[src.key]
        by_key: dict[str, list[Path]] = {}
        for c in clean:
            by_key.setdefault(key(c), []).append(c)
        degraded, ign, other = list_images(resolve(base, src.degraded), src.degraded_files)
        ignored += ign
        if other and src.degraded_files != ("*",):
            part.notes.append(
                f"{src.dataset} {src.split}/{src.task}: {other} image(s) in "
                f"{src.degraded} match none of {src.degraded_files}; not used"
            )
        used: dict[str, int] = {}
        for d in degraded:
            k = key(d)
            match = by_key.get(k, [])
            if len(match) != 1:
                kind = "unpaired" if not match else "ambiguous"
                detail = (
                    f"no clean image with {src.key} '{k}' in {src.clean}"
                    if not match
                    else f"{len(match)} clean images share {src.key} '{k}'"
                )
                part.issues.append(Issue(kind, str(d), detail))
                continue
            used[k] = used.get(k, 0) + 1
            if src.one_to_one and used[k] > 1:
                part.issues.append(Issue("ambiguous", str(d), f"second degraded image for '{k}'"))
                continue
            part.pairs.append(Pair(src.split, src.task, src.dataset, match[0], d))
        if src.one_to_one:
            part.issues += [
                Issue("unpaired", str(c), f"clean image without degraded image in {src.degraded}")
                for k, cs in by_key.items()
                if k not in used
                for c in cs
            ]
    if ignored:
        part.notes.append(
            f"{src.dataset} {src.split}/{src.task}: ignored {ignored} non-image or hidden file(s)"
        )


def _missing(layout: Layout, base: Path) -> list[str]:
    """The folder patterns of ``layout`` that do not exist (or hold no images) under ``base``."""
    out = []
    for s in layout.sources:
        for pattern, files in ((s.clean, s.clean_files), (s.degraded, s.degraded_files)):
            if pattern is None:
                continue
            dirs = resolve(base, pattern)
            if not dirs:
                out.append(f"{pattern}/ (no such folder)")
            elif not list_images(dirs, files, s.clean_exclude if pattern == s.clean else ())[0]:
                out.append(f"{pattern}/ (no {'|'.join(files)} images)")
    return list(dict.fromkeys(out))


def find(name: str, root: Path, layouts: list[Layout], allow_partial: bool = False) -> Part:
    """The first of ``layouts`` present under ``root`` (or ``root/data``), paired.

    Args:
        name: part name, for messages.
        root: data root.
        layouts: accepted trees, tried in order.
        allow_partial: when no layout is complete, use the first partly present one (its
            missing folders yield no pairs, which the count check then reports).

    Raises:
        LayoutError: no layout is complete (or, with ``allow_partial``, none is even partly
            present); the message lists every accepted tree and what is missing.
    """
    bases = [root] + [p for p in resolve(root, "data") if p != root]
    partial, first_partial = [], None
    for layout in layouts:
        for base in bases:
            missing = _missing(layout, base)
            patterns = {p for s in layout.sources for p in (s.clean, s.degraded) if p}
            if not missing:
                return _paired(name, layout, base)
            if len(missing) < len(patterns):
                partial.append(f"  {layout.name} under {base}: missing " + "; ".join(missing))
                first_partial = first_partial or (layout, base, missing)
    if allow_partial and first_partial:
        layout, base, missing = first_partial
        part = _paired(name, layout, base)
        part.notes.append(f"PARTIAL layout {layout.name}: missing " + "; ".join(missing))
        return part
    trees = "\n".join(lay.describe() for lay in layouts)
    msg = (
        f"{name}: no accepted layout found under {root} (also tried {root}/data).\n"
        f"Expected one of these trees (folder names case-insensitive):\n{trees}"
    )
    if partial:
        msg += "\nPartly present:\n" + "\n".join(partial)
    raise LayoutError(msg)


def _paired(name: str, layout: Layout, base: Path) -> Part:
    part = Part(name, layout, base, [])
    for src in layout.sources:
        _pair_source(src, base, part)
    return part


# ---------------------------------------------------------------------------------------------
# Image checks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    converted: str  # '' for 8-bit RGB, else grayscale | palette | alpha | 16-bit | cmyk


def _conversion(im: Image.Image) -> str:
    raw = " ".join(str(getattr(t, "args", "")) for t in (im.tile or []))
    if im.mode.startswith("I") or ";16" in raw:
        return "16-bit"
    return {
        "L": "grayscale",
        "1": "grayscale",
        "P": "palette",
        "RGBA": "alpha",
        "LA": "alpha",
        "PA": "alpha",
        "CMYK": "cmyk",
        "YCbCr": "cmyk",
    }.get(im.mode, "")


# Bytes without 0xFF (so no marker), fed to the decoder in place of a JPEG's missing scan data.
_JPEG_FILLER = bytes(range(1, 255)) * 16


def _decoded(data: bytes) -> np.ndarray | None:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def jpeg_scan_complete(path: Path) -> bool:
    """False when a JPEG's entropy-coded scan ends before its last block (middle cut out).

    A decoder that runs out of scan data fills the missing blocks with flat gray and says
    nothing (Pillow, like libjpeg, only warns on stderr), even when the end-of-image marker is
    kept. The test compares two decodes: the file as is, and with filler bytes inserted just
    before its end marker. A complete scan has decoded every block before the filler, so the
    pixels are equal; a short scan decodes the filler as its missing blocks, so they differ.
    """
    data = Path(path).read_bytes()
    end = data.rfind(b"\xff\xd9")
    if end < 0:
        return False
    whole = _decoded(data)
    padded = _decoded(data[:end] + _JPEG_FILLER + data[end:])
    return whole is not None and padded is not None and np.array_equal(whole, padded)


def probe_image(path: Path, level: str = "quick") -> ImageInfo:
    """Size and colour mode of an image, after checking it decodes.

    ``quick`` checks the PNG chunk CRCs up to IEND and that a JPEG ends with its EOI marker
    (both catch truncation without decoding) and decodes other formats; ``full`` decodes
    every image with `m2ir_lib.data.datasets.load_image` and checks that a JPEG's scan data covers
    every block (`jpeg_scan_complete`: catches a cut with the end marker kept).

    Raises:
        ImageReadError: naming the file.
    """
    try:
        with Image.open(path) as im:
            info = ImageInfo(im.width, im.height, _conversion(im))
            fmt = im.format
            if level == "quick" and fmt == "PNG":
                im.verify()
            elif level == "quick" and fmt == "JPEG":
                with open(path, "rb") as f:
                    f.seek(max(0, os.path.getsize(path) - 1024))
                    if b"\xff\xd9" not in f.read():
                        raise ImageReadError(f"{path}: truncated JPEG (no end-of-image marker)")
            elif level == "quick":
                im.load()
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: cannot decode image ({err})") from err
    if level == "full":
        load_image(path)
        if fmt == "JPEG" and not jpeg_scan_complete(path):
            raise ImageReadError(
                f"{path}: truncated JPEG (the scan data stops before the last block; "
                "decoders fill the rest with gray)"
            )
    return info


def check_images(part: Part, level: str, on_bad: str, patch: int, progress: bool = False) -> None:
    """Open every image of ``part``; drop or stop on corrupt, mismatched and too small pairs.

    Args:
        part: found pairs; bad ones are removed and recorded as issues when skipping.
        level: ``quick``, ``full`` or ``none`` (see `probe_image`).
        on_bad: ``stop`` raises `BadImageError` at the first bad pair; ``skip`` leaves it out.
        patch: training crop side; train images smaller after the crop to 16 are bad.
        progress: show a tqdm bar.
    """
    if level not in VERIFY_LEVELS or on_bad not in ON_BAD:
        raise ValueError(f"verify must be one of {VERIFY_LEVELS}, on_bad one of {ON_BAD}")
    if level == "none":
        part.notes.append("images not opened (verify=none)")
        return
    cache: dict[Path, ImageInfo | str] = {}  # clean images shared by many pairs (OTS: 35)

    def info(path):
        if path not in cache:
            try:
                cache[path] = probe_image(path, level)
            except ImageReadError as err:
                cache[path] = str(err)
        return cache[path]

    kept = []
    for pair in tqdm(
        part.pairs,
        desc=f"check {part.name}",
        unit="pair",
        mininterval=1.0,
        disable=None if progress else True,
    ):
        bad = None
        infos = [(p, info(p)) for p in (pair.degraded, pair.clean) if p is not None]
        for p, i in infos:
            if isinstance(i, str):
                bad = Issue("corrupt", str(p), i)
                break
            if i.converted:
                part.converted[str(p)] = i.converted
        if bad is None and len(infos) == 2:
            (dp, di), (cp, ci) = infos
            if (di.width, di.height) != (ci.width, ci.height):
                bad = Issue(
                    "size-mismatch",
                    str(dp),
                    f"{di.width}×{di.height}, but clean {cp.name} is {ci.width}×{ci.height}",
                )
        if bad is None and pair.split == "train":
            ci = infos[-1][1]
            h, w = ci.height - ci.height % 16, ci.width - ci.width % 16
            if min(h, w) < patch:
                bad = Issue(
                    "too-small",
                    str(pair.clean),
                    f"{w}×{h} after the crop to a "
                    f"multiple of 16, smaller than the {patch}² training patch",
                )
        if bad is None:
            kept.append(pair)
        elif on_bad == "stop":
            raise BadImageError(
                f"{bad.path}: {bad.kind}: {bad.detail}.\nStopped (on_bad=stop); "
                "rerun with --on-bad skip to leave such pairs out (the count "
                "check then needs --allow-partial)."
            )
        else:
            part.issues.append(bad)
    part.pairs = kept
