"""DA-CLIP, the frozen degradation prior of DACP, eq. (3), §III-C.

DA-CLIP (Luo et al., "Controlling Vision-Language Models for Multi-Task Image Restoration",
ICLR 2024) is an open_clip ViT-B-32 CLIP plus an image *controller*: a copy of the visual
tower whose 12 residual blocks each feed a zero-initialised Linear(width, width). The
frozen CLIP visual tower adds those controller hiddens after its own blocks, in reverse
order (the deepest controller hidden steers the first block). The controller's pooled output
is the degradation embedding D(I); the steered CLIP output is the clean-content embedding.

This file is our own implementation on open_clip 3.3.0 building blocks. Its parameter and
state-dict layout equals the public `daclip_ViT-B-32.pt` (631 keys, including the
`visual.*` alias of `clip.visual.*`), so that checkpoint loads strictly.

M²IR uses DA-CLIP only through `DaCLIPPrior`: P' = [d̂ ; softmax(100 · d̂ · t̂ᵀ)], with the
T prompt embeddings t̂ computed once at construction (the text tower never runs per image;
Table XIII's 975−961 G confirms this, docs/readings.md §6). Nothing here downloads anything.
"""

from __future__ import annotations

import copy
import os

import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.factory import get_model_config
from open_clip.model import CLIP
from open_clip.tokenizer import SimpleTokenizer
from torch import nn

CHECKPOINT_NAME = "daclip_ViT-B-32.pt"
# Where the workbook looks by default; any path can be passed instead.
DEFAULT_CHECKPOINT = os.path.join("weights", CHECKPOINT_NAME)
SIMILARITY_SCALE = 100.0  # CLIP's usual logit scale; M2Restore's softmax(100·d̂·t̂ᵀ)
_NO_CHECKPOINT_HINT = (
    f"Download {CHECKPOINT_NAME} from the DA-CLIP release (github.com/Algolzw/daclip-uir, "
    f"README 'Pretrained models') and put it at {DEFAULT_CHECKPOINT} (or pass its path), "
    "or use prior='mlp', the paper's learnable-prior ablation (§IV-C), which needs no weights."
)


# ----------------- Controller: the visual blocks plus one zero-initialised connection per block
class ControlTransformer(nn.Module):
    """DA-CLIP image controller, §III-C (DA-CLIP Fig. 2): blocks + zero connections.

    Attribute names (`transformer`, `zero_modules`) fix the checkpoint's key layout.
    """

    def __init__(self, transformer: nn.Module):
        super().__init__()
        if not getattr(transformer, "batch_first", True):
            raise ValueError("ControlTransformer expects an open_clip Transformer with batch_first")
        self.transformer = transformer
        width, layers = transformer.width, transformer.layers
        self.zero_modules = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        for zero in self.zero_modules:  # zero init: the controller starts as a no-op on CLIP
            nn.init.zeros_(zero.weight)
            nn.init.zeros_(zero.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Tokens (B, L, W) -> (tokens after the last block, one control hidden per block)."""
        hiddens = []
        for block, zero in zip(self.transformer.resblocks, self.zero_modules, strict=True):
            x = block(x)  # (B, L, W)
            hiddens.append(zero(x))  # the controller itself is not steered
        return x, hiddens


# ----------------------------------------------------------- DA-CLIP = frozen CLIP + controller
class DaCLIP(nn.Module):
    """DA-CLIP wrapper of an open_clip CLIP (D(I) of eq. (3), §III-C).

    Args:
        clip: an open_clip `CLIP` with a ViT visual tower (built by `random_daclip` /
            `load_daclip`); its visual tower is deep-copied into the controller.
    """

    def __init__(self, clip: CLIP):
        super().__init__()
        self.clip = clip
        self.visual = clip.visual  # alias: the checkpoint stores it twice
        self.visual_control = copy.deepcopy(clip.visual)
        self.visual_control.transformer = ControlTransformer(self.visual_control.transformer)
        self.logit_scale = nn.Parameter(clip.logit_scale.detach().clone())

    @staticmethod
    def _pooled(visual: nn.Module, x: torch.Tensor) -> torch.Tensor:
        pooled, _ = visual._pool(x)  # (B, width)
        return pooled @ visual.proj if visual.proj is not None else pooled  # (B, embed_dim)

    def encode_image(self, image: torch.Tensor, control: bool = True, normalize: bool = False):
        """CLIP-preprocessed image (B, 3, 224, 224) -> (image_features, degradation_features).

        With `control=False` it is plain CLIP and returns image features only.
        """
        if not control:
            return self.clip.encode_image(image, normalize=normalize)
        x_c, hiddens = self.visual_control.transformer(self.visual_control._embeds(image))
        degra = self._pooled(self.visual_control, x_c)  # (B, embed_dim)
        x = self.clip.visual._embeds(image)  # (B, L, W)
        for block in self.clip.visual.transformer.resblocks:
            x = block(x) + hiddens.pop()  # reverse order: deepest hidden first
        feats = self._pooled(self.clip.visual, x)  # (B, embed_dim)
        if normalize:
            feats, degra = F.normalize(feats, dim=-1), F.normalize(degra, dim=-1)
        return feats, degra

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Token ids (T, context) -> text embeddings (T, embed_dim) from the frozen CLIP."""
        return self.clip.encode_text(tokens, normalize=normalize)

    def tokenize(self, texts) -> torch.Tensor:
        """Prompts -> token ids (T, context) with CLIP's BPE tokenizer (ships in open_clip)."""
        return SimpleTokenizer(context_length=self.clip.context_length)(list(texts))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The image path only: (image_features, degradation_features), both (B, embed_dim)."""
        return self.encode_image(image, control=True)


# ------------------------------------------------------------------------- Building and loading
def daclip_config(model: str | dict = "ViT-B-32") -> dict:
    """open_clip config dict from a registered name ('ViT-B-32', 'daclip_ViT-B-32') or a dict."""
    if isinstance(model, dict):
        cfg = copy.deepcopy(model)
    else:
        name = model.removeprefix("daclip_")
        cfg = get_model_config(name)
        if cfg is None:
            raise ValueError(
                f"unknown open_clip model {model!r}; register a JSON config with "
                "open_clip.add_model_config or pass the config dict"
            )
    cfg.pop("custom_text", None)  # DA-CLIP builds a plain CLIP despite its JSON's custom_text
    if not {"embed_dim", "vision_cfg", "text_cfg"} <= cfg.keys():
        raise ValueError(f"model config needs embed_dim, vision_cfg, text_cfg; got {sorted(cfg)}")
    if isinstance(cfg["vision_cfg"].get("layers"), (list, tuple)) or cfg["vision_cfg"].get(
        "timm_model_name"
    ):
        raise ValueError("DA-CLIP needs a ViT visual tower (open_clip VisionTransformer)")
    return cfg


def random_daclip(model_cfg: str | dict | None = None) -> DaCLIP:
    """DA-CLIP structure with random CLIP weights (zero controller connections).

    For parameter/FLOP counting and tests only; it is never a real prior.

    Args:
        model_cfg: open_clip model name or config dict; None means ViT-B-32.
    """
    return DaCLIP(CLIP(**daclip_config(model_cfg or "ViT-B-32")))


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a pickle of arbitrary objects is refused, not executed
        raise RuntimeError(f"could not read {path} as a DA-CLIP state dict: {err}") from err
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # open_clip training checkpoints
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise RuntimeError(f"{path} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}  # DDP-saved keys


def load_daclip(path: str | os.PathLike, model_name: str | dict = "ViT-B-32") -> DaCLIP:
    """Load a DA-CLIP checkpoint strictly (every key of the public file's layout, nothing else).

    Args:
        path: a `daclip_ViT-B-32.pt`-style file (raw state dict or {'state_dict': ...},
            optionally with DDP 'module.' prefixes).
        model_name: open_clip config name or dict of the CLIP inside (ViT-B-32 for the public file).

    Returns:
        The DaCLIP in eval mode with gradients off.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"DA-CLIP checkpoint not found: {path}. {_NO_CHECKPOINT_HINT}")
    state = _read_state_dict(path)
    if not any(k.startswith("visual.") for k in state):  # a de-duplicated save: restore the alias
        state.update(
            {k.removeprefix("clip."): v for k, v in state.items() if k.startswith("clip.visual.")}
        )
    model = random_daclip(model_name)
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    if missing or unexpected:
        raise RuntimeError(
            f"{path} does not match the DA-CLIP layout: {len(missing)} missing keys (e.g. "
            f"{missing[:4]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:4]}). Expected "
            f"{len(expected)} keys: clip.*, visual.* (alias), visual_control.*, logit_scale."
        )
    bad = [
        (k, tuple(state[k].shape), tuple(v.shape))
        for k, v in expected.items()
        if v.shape != state[k].shape
    ]
    if bad:
        raise RuntimeError(
            f"{path}: {len(bad)} keys of the wrong shape (key, file, model), "
            f"e.g. {bad[:3]}; is it a DA-CLIP {model_name!r} checkpoint?"
        )
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)


# ----------------------------------------------------------------------------------- P' of DACP
def clip_preprocess(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """DA-CLIP's image transform in torch: bicubic resize, centre crop, OpenAI normalisation.

    Mirrors torchvision Resize(224) + CenterCrop(224) + Normalize of daclip-uir's `clip_transform`.
    """
    h, w = image.shape[-2:]
    short = size[0]
    new_h, new_w = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    x = F.interpolate(
        image, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True
    ).clamp(0, 1)  # PIL's bicubic output is clipped too
    top, left = int(round((new_h - size[0]) / 2.0)), int(round((new_w - size[1]) / 2.0))
    x = x[..., top : top + size[0], left : left + size[1]]  # (B, 3, 224, 224)
    mean = x.new_tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class DaCLIPPrior(nn.Module):
    """Degradation prior P' = [D(I); S(I, text)] of DACP, eq. (3), §III-C (frozen).

    Args:
        daclip: a DaCLIP (loaded with `load_daclip`; random weights only for counting/tests).
        prompts: the T textual descriptors (e.g. config.DEFAULT_PROMPTS).
    """

    def __init__(self, daclip: DaCLIP, prompts):
        super().__init__()
        prompts = tuple(prompts)
        if not prompts or not all(isinstance(p, str) and p for p in prompts):
            raise ValueError(f"prompts must be non-empty strings, got {prompts!r}")
        self.daclip = daclip.eval().requires_grad_(False)
        self.prompts = prompts
        self.image_size = tuple(daclip.visual.image_size)
        with torch.no_grad():  # t̂: computed once here, never per image
            device = daclip.logit_scale.device
            t_hat = daclip.encode_text(daclip.tokenize(prompts).to(device), normalize=True)
        self.register_buffer("text_features", t_hat.float(), persistent=False)  # (T, embed_dim)

    @property
    def out_dim(self) -> int:
        """Width of P': embed_dim + T (518 for ViT-B-32 and 6 prompts)."""
        return self.text_features.shape[1] + self.text_features.shape[0]

    def train(self, mode: bool = True):
        """DA-CLIP stays in eval mode whatever the enclosing model does (it is frozen)."""
        super().train(mode)
        self.daclip.eval()
        return self

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Degraded image (B, 3, H, W) in [0, 1] -> P' (B, embed_dim + T)."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"expected an image batch (B, 3, H, W), got {tuple(image.shape)}")
        x = clip_preprocess(image.float(), self.image_size)  # (B, 3, 224, 224)
        _, degra = self.daclip.encode_image(x, control=True)
        d_hat = F.normalize(degra.float(), dim=-1)  # D(I), (B, 512)
        sim = (SIMILARITY_SCALE * d_hat @ self.text_features.T).softmax(dim=-1)  # S(I,text) (B,T)
        return torch.cat([d_hat, sim], dim=1)  # P', (B, 512 + T)


def load_daclip_prior(
    checkpoint: str | os.PathLike | None, prompts, model_name: str | dict = "ViT-B-32"
) -> DaCLIPPrior:
    """`DaCLIPPrior(load_daclip(checkpoint), prompts)`, used by `networks.build_model`.

    Args:
        checkpoint: path to `daclip_ViT-B-32.pt`; None raises the missing-file error.
        prompts: the T textual descriptors.
        model_name: open_clip config of the CLIP inside.
    """
    if checkpoint is None:
        raise FileNotFoundError(f"prior='daclip' needs a DA-CLIP checkpoint. {_NO_CHECKPOINT_HINT}")
    return DaCLIPPrior(load_daclip(checkpoint, model_name), prompts)
