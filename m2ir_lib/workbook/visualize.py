"""What the network does inside: MSA gate maps (Fig. 9), expert routing maps (Fig. 5),
encoder-feature t-SNE (Fig. 10) and side-by-side restorations (Figs. 6–8), §IV-D.

Everything is read with forward hooks on a trained `M2IR`, so the model code stays as it
is; each `capture_*` returns plain tensors, each `plot_*` draws them with matplotlib. The
images and networks come from `m2ir_lib.workbook.samples`.

What §IV-D claims of Fig. 9 and Fig. 10, with intervals over photographs, is
`m2ir_lib.workbook.figstats`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FormatStrFormatter, MaxNLocator
from sklearn.manifold import TSNE

from m2ir_lib.core.model import M2IR, MSA, Routing
from m2ir_lib.workbook.plots import method_colour
from m2ir_lib.workbook.results import save_figure
from m2ir_lib.workbook.tables import SEED_TAG

ENCODER_LEVELS = ("encoder1", "encoder2", "encoder3", "latent")


# ---------------------------------------------------------------------------- features


def _points(item: dict, tile: int) -> int:
    """How many feature vectors an image gives: 1, or one per whole tile×tile crop."""
    _, h, w = item["degraded"].shape
    return 1 if not tile else (h // tile) * (w // tile)


def feature_sets(
    models: dict, items: list[dict], level: str = "latent", tile: int = 0
) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Encoder features of the degraded test images for each model, with the task of every
    point (Fig. 10): {model label: (features (n, C), labels)}."""
    if not items:
        print("no test images (data missing): no features")
        return {}
    labels = [item["task"] for item in items for _ in range(_points(item, tile))]
    return {
        name: (encoder_features(m, [i["degraded"] for i in items], level, tile), labels)
        for name, m in models.items()
    }


def point_units(items: list[dict], tile: int = 0) -> list[str]:
    """The independent unit of every point of `feature_sets` (in its order): the photograph
    its image was cut from (`unit`), else the image itself."""
    return [str(i.get("unit", i["name"])) for i in items for _ in range(_points(i, tile))]


# ---------------------------------------------------------------------------- capture


@torch.no_grad()
def capture_gates(model: M2IR, image: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """The two sigmoid gates of every encoder MSA for one image, eq. (1)–(2), §III-B.

    Args:
        model: a trained M²IR with `block='mst'` (a Transformer encoder has no gates).
        image: (3, H, W) or (1, 3, H, W) in [0, 1].

    Returns:
        {"encoder1.0": {"gate": σ(W_l² X), "mask": σ(W_d W_l¹ X)}, ...}, each averaged over
        channels to an (h, w) map of the block's resolution.
    """
    msas = {
        f"{lvl}.{i}": blk.attn
        for lvl in ENCODER_LEVELS
        for i, blk in enumerate(getattr(model, lvl))
        if isinstance(blk.attn, MSA)
    }
    if not msas:
        raise ValueError("the model has no MSA in its encoder (block='transformer'?)")
    out: dict[str, dict[str, torch.Tensor]] = {name: {} for name in msas}
    hooks = []
    for name, msa in msas.items():  # msa.act: σ, or SiLU under msa_reading="silu"
        hooks.append(
            msa.w_l2.register_forward_hook(
                lambda m, i, o, n=name, a=msa.act: out[n].__setitem__("gate", a(o)[0].mean(0))
            )
        )
        hooks.append(
            msa.w_d.register_forward_hook(
                lambda m, i, o, n=name, a=msa.act: out[n].__setitem__("mask", a(o)[0].mean(0))
            )
        )
    try:
        model.eval()(_batch(image))
    finally:
        for h in hooks:
            h.remove()
    return out


def gate_pairs(model: M2IR, items: list[dict]) -> list[dict]:
    """Fig. 9's pairs: per test item its task, image, unit, the degraded input and its GT, and
    the gates of `capture_gates` on each."""
    return [
        dict(
            task=i["task"],
            name=i["name"],
            unit=i.get("unit", i["name"]),
            degraded=i["degraded"],
            clean=i["clean"],
            gates_degraded=capture_gates(model, i["degraded"]),
            gates_clean=capture_gates(model, i["clean"]),
        )
        for i in items
    ]


@torch.no_grad()
def capture_routing(model: M2IR, image: torch.Tensor) -> list[Routing]:
    """Per-pixel routing of every ADEC for one image (eq. 4–5); [] when DGEA has no
    specialised experts."""
    _, routings = model.eval()(_batch(image), return_routing=True)
    return routings


@torch.no_grad()
def encoder_features(
    model: M2IR, images: list[torch.Tensor], level: str = "latent", patch: int = 0
) -> np.ndarray:
    """Globally pooled encoder features, one vector per image (or per patch), Fig. 10.

    Args:
        model: trained M²IR (MST or Transformer encoder).
        images: list of (3, H, W) tensors in [0, 1].
        level: which encoder output to read (one of ENCODER_LEVELS).
        patch: when > 0, cut each image into non-overlapping patch×patch tiles and return a
            vector per tile (more points for the t-SNE from few images).

    Returns:
        (n, C) float array.
    """
    if level not in ENCODER_LEVELS:
        raise ValueError(f"level={level!r}; expected one of {ENCODER_LEVELS}")
    feats: list[torch.Tensor] = []
    hook = getattr(model, level).register_forward_hook(
        lambda m, i, o: feats.append(o.mean(dim=(2, 3)))
    )  # (B, C)
    try:
        model.eval()
        for img in images:
            model(_tiles(img, patch) if patch else _batch(img))
    finally:
        hook.remove()
    return torch.cat(feats).double().numpy()


def tsne(features: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """2-D t-SNE of standardised features (sklearn), perplexity capped for small sets;
    None (with a message) below 4 points."""
    n = len(features)
    if n < 4:
        print(f"t-SNE needs at least 4 points, got {n}")
        return None
    z = (features - features.mean(0)) / (features.std(0) + 1e-8)
    perplexity = float(min(30, max(2, (n - 1) // 3)))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)


# ---------------------------------------------------------------------------- plot


def plot_training_curves(log: pd.DataFrame, path: str | Path | None = None, ncols: int = 3):
    """Training loss of eq. (11) per iteration (rolling mean, log scale), one panel per data
    setting (the `runinfo.unique` prefix 'setting: '), each network in its colour of every
    figure (`plots.method_colour`), extra training seeds dashed and dotted in the same colour.

    Args:
        log: `runinfo.curves`' frame (run, step, loss_smoothed).
        path: PNG to write, if given.
        ncols: panels per row.
    """
    if log.empty:
        print("no training logs to plot")
        return None
    runs = list(dict.fromkeys(log["run"]))
    split = {r: r.split(": ", 1) if ": " in r else ["", r] for r in runs}
    settings = list(dict.fromkeys(s for s, _ in split.values()))
    ncols = min(ncols, len(settings))
    nrows = -(-len(settings) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, squeeze=False, figsize=(4.6 * ncols, 3.6 * nrows), layout="constrained"
    )
    styles = ["-", "--", ":", "-."]
    for ax, setting in zip(axes.flat, settings, strict=False):
        for run in (r for r in runs if split[r][0] == setting):
            label = split[run][1]
            row, _, seed = label.partition(SEED_TAG)
            g = log[log["run"] == run]
            ax.plot(
                g["step"],
                g["loss_smoothed"],
                color=method_colour(row),
                linestyle=styles[int(seed) % len(styles)] if seed.isdigit() else "-",
                label=label,
            )
        ax.set_yscale("log")
        for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis(FormatStrFormatter("%.3g"))  # 0.25, not 2.5×10⁻¹
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"trained on {setting}" if setting else "training runs", fontsize=10)
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss, eq. (11), rolling mean")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1)
    for ax in axes.flat[len(settings) :]:
        ax.axis("off")
    return save_figure(fig, path)


def plot_pairs(items: list[dict], path: str | Path | None = None):
    """Degraded input above clean target for each item (`EvalDataset` dicts)."""
    if not items:
        print("no test images to show (data missing)")
        return None
    fig, axes = plt.subplots(2, len(items), squeeze=False, figsize=(2.2 * len(items), 4.6))
    for c, item in enumerate(items):
        sigma = item.get("sigma")
        title = item["task"] + (f" σ={int(sigma)}" if sigma == sigma and sigma else "")
        axes[0, c].imshow(_hwc(item["degraded"]))
        axes[0, c].set_title(title, fontsize=8)
        axes[1, c].imshow(_hwc(item["clean"]))
        axes[1, c].set_title("clean", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path)


def _last_block_per_level(names: list[str]) -> list[str]:
    """The deepest block of each encoder level ("encoder2.1" of encoder2.0–2.1), in order."""
    last: dict[str, str] = {}
    for n in names:
        last[n.rsplit(".", 1)[0]] = n  # capture_gates lists a level's blocks in order
    return list(last.values())


def plot_gates(
    pairs: list[dict], path: str | Path | None = None, kind: str = "gate", blocks: str = "last"
):
    """Fig. 9: for each (degraded, GT) pair, the image then one gate map per encoder level
    (the level's last block; `blocks="all"` draws every block), all maps on one colour scale
    with one labelled colour bar, so every panel reads against the same numbers.

    Args:
        pairs: dicts with `task`, `degraded`, `clean` (3, H, W) and `gates_degraded`,
            `gates_clean` from `capture_gates`.
        path: PNG to write, if given.
        kind: "gate" (σ(W_l² X), eq. 2) or "mask" (σ(W_d W_l¹ X), eq. 1).
        blocks: "last" (one panel per level) or "all".
    """
    what = {"gate": "gate σ(W_l² X)", "mask": "mask σ(W_d W_l¹ X)"}[kind]
    names = list(pairs[0]["gates_degraded"])
    names = _last_block_per_level(names) if blocks == "last" else names
    maps = [
        {
            w: {n: p[f"gates_{w}"][n][kind].cpu().numpy() for n in names}
            for w in ("degraded", "clean")
        }
        for p in pairs
    ]
    # One scale for every panel, stretched to the 1st–99th percentile of all maps drawn: a
    # short-trained gate varies in a narrow band, and a shared scale keeps panels comparable.
    lo, hi = np.percentile(
        np.concatenate([m.ravel() for pm in maps for w in pm.values() for m in w.values()]), [1, 99]
    )
    hi = max(hi, lo + 1e-6)
    h, w = pairs[0]["clean"].shape[-2:]
    fig, axes = plt.subplots(
        2 * len(pairs),
        1 + len(names),
        squeeze=False,
        figsize=(3.0 * (1 + len(names)) + 1.0, (3.0 * h / w + 0.45) * 2 * len(pairs)),
        layout="constrained",
    )
    for r, pair in enumerate(pairs):
        for j, which in enumerate(("degraded", "clean")):
            row = axes[2 * r + j]
            row[0].imshow(_hwc(pair[which]))
            row[0].set_title(
                f"{pair['task']}: {'degraded input' if which == 'degraded' else 'ground truth'}",
                fontsize=9,
            )
            for c, name in enumerate(names, start=1):
                row[c].imshow(maps[r][which][name], cmap="viridis", vmin=lo, vmax=hi)
                row[c].set_title(f"{name} {tuple(maps[r][which][name].shape)}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    bar = fig.colorbar(axes[0, 1].images[0], ax=axes[:, 1:].ravel().tolist(), shrink=0.6)
    bar.set_label(f"{what}, channel mean (one scale for all panels)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    shown = "last block of each encoder level" if blocks == "last" else "every encoder block"
    fig.suptitle(
        f"Fig. 9: MSA {what}, {shown}; colours span the 1st–99th percentile "
        f"of all maps ({lo:.3f}–{hi:.3f})",
        fontsize=9,
    )
    return save_figure(fig, path)


def plot_routing(image: torch.Tensor, routings: list[Routing], path: str | Path | None = None):
    """Fig. 5 made visible: per ADEC, the top-1 specialised expert of every pixel (legend:
    one colour per expert) and each expert's confidence s' (eq. 4, colour bar 0–1)."""
    if not routings:
        raise ValueError("no routing to show (DGEA without specialised experts)")
    n = routings[0].confidence.shape[1]
    fig, axes = plt.subplots(
        len(routings),
        2 + n,
        squeeze=False,
        figsize=(2.2 * (2 + n) + 1.2, 2.2 * len(routings)),
        layout="constrained",
    )
    cmap = plt.get_cmap("tab10")
    for r, rt in enumerate(routings):
        axes[r, 0].imshow(_hwc(image))
        axes[r, 0].set_title(f"ADEC {r + 1} input", fontsize=8)
        top1 = rt.confidence[0].argmax(0).cpu()
        axes[r, 1].imshow(top1, cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
        axes[r, 1].set_title(f"top-1 expert ({tuple(top1.shape)})", fontsize=8)
        for e in range(n):
            im = axes[r, 2 + e].imshow(rt.confidence[0, e].cpu(), cmap="magma", vmin=0, vmax=1)
            axes[r, 2 + e].set_title(f"confidence s'_{e + 1}", fontsize=8)
        bar = fig.colorbar(im, ax=list(axes[r, 2:]), shrink=0.8)
        bar.set_label("s' (eq. 4)", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.legend(
        [Patch(color=cmap(e)) for e in range(n)],
        [f"expert {e + 1}" for e in range(n)],
        loc="outside lower center",
        ncol=n,
        fontsize=8,
        title="top-1 expert",
        title_fontsize=8,
    )
    return save_figure(fig, path)


def plot_tsne(panels: dict[str, tuple[np.ndarray, list[str]]], path: str | Path | None = None):
    """Fig. 10: one t-SNE panel per encoder, points coloured by degradation type."""
    panels = {k: v for k, v in panels.items() if v[0] is not None}
    if not panels:
        print("no features to embed (data missing)")
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for ax, (title, (emb, labels)) in zip(axes[0], panels.items(), strict=False):
        sns.scatterplot(x=emb[:, 0], y=emb[:, 1], hue=labels, ax=ax, s=25, palette="Set1")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return save_figure(fig, path)


def plot_comparison(rows: list[dict], path: str | Path | None = None, zoom: float = 1 / 3):
    """Figs. 6–8: per row, degraded input, each method's output and the GT, each with its
    PSNR against the GT, and under them the same zoomed crop of every panel, as the paper's
    figures show: the crop (green box) is where the input is most degraded (`crop_box`).

    Args:
        rows: `samples.restorations`' rows: `task`, `name`, `degraded`, `clean` (3, H, W),
            `input_psnr` and `outputs` {method: (image (3, H, W), psnr)}.
        path: PNG to write, if given.
        zoom: side of the crop as a fraction of the image's shorter side.
    """
    methods = list(rows[0]["outputs"])
    ncol = 2 + len(methods)
    h, w = rows[0]["clean"].shape[-2:]
    ratios = [h / w, max(h / w, 0.7)] * len(rows)  # crops a little smaller than full width
    fig, axes = plt.subplots(
        2 * len(rows),
        ncol,
        squeeze=False,
        figsize=(2.3 * ncol, sum(2.3 * r + 0.5 for r in ratios)),
        height_ratios=ratios,
        layout="constrained",
    )
    for r, row in enumerate(rows):
        sigma = row.get("sigma")
        task = row["task"] + (f" σ={int(sigma)}" if sigma == sigma and sigma else "")
        psnr_in = row.get("input_psnr", float("nan"))
        panels = [(f"{task}, {row.get('name', '')}\ninput {psnr_in:.2f} dB", row["degraded"])]
        panels += [(f"{m}\n{psnr:.2f} dB", img) for m, (img, psnr) in row["outputs"].items()]
        panels += [("GT\n(PSNR ∞)", row["clean"])]
        y, x, side = crop_box(row["degraded"], row["clean"], zoom)
        for c, (title, img) in enumerate(panels):
            full, crop = axes[2 * r, c], axes[2 * r + 1, c]
            full.imshow(_hwc(img))
            full.add_patch(Rectangle((x - 0.5, y - 0.5), side, side, fill=False, ec="lime", lw=1.2))
            full.set_title(title, fontsize=8)
            crop.imshow(_hwc(img[:, y : y + side, x : x + side]), interpolation="nearest")
            crop.set_title(f"zoom ×{min(img.shape[-2:]) / side:.0f}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    # A 2.3-inch panel at 90 dpi is ~207 px, about the `mini` tiles' own 224 px: 110 dpi
    # would only upsample the photographs and make Fig. 7 (7 rows of them) over 2 MB.
    return save_figure(fig, path, dpi=90)


def crop_box(degraded: torch.Tensor, clean: torch.Tensor, zoom: float = 1 / 3):
    """(y, x, side) of the square crop, `zoom` of the shorter side, where the input differs
    most from its GT (mean |degraded − GT| over the window, stride side/4): the region
    where restorations differ, as the paper's zoomed crops are."""
    h, w = clean.shape[-2:]
    side = max(4, int(min(h, w) * zoom))
    stride = max(1, side // 4)
    damage = (degraded - clean).abs().mean(0)[None, None]
    score = F.avg_pool2d(damage, side, stride)[0, 0]
    i = int(score.flatten().argmax())
    return (i // score.shape[1]) * stride, (i % score.shape[1]) * stride, side


# ---------------------------------------------------------------------------- helpers


def _batch(image: torch.Tensor) -> torch.Tensor:
    return image[None] if image.ndim == 3 else image


def _tiles(image: torch.Tensor, patch: int) -> torch.Tensor:
    """(3, H, W) -> (n, 3, patch, patch) non-overlapping tiles (the border remainder dropped)."""
    c, h, w = image.shape
    if h < patch or w < patch:
        raise ValueError(f"image {h}x{w} smaller than patch {patch}")
    t = image[:, : h - h % patch, : w - w % patch].unfold(1, patch, patch).unfold(2, patch, patch)
    return t.permute(1, 2, 0, 3, 4).reshape(-1, c, patch, patch)


def _hwc(image: torch.Tensor) -> np.ndarray:
    return image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
