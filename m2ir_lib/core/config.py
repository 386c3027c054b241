"""Configuration as data: the M²IR network (`M2IRConfig`) and the run profiles.

The paper's configuration is the default of every field; `smoke` and `mini` are
`dataclasses.replace` edits of it, so all profiles build the same network code (§III).
Every ablation of Tables VII–IX is a field here, never a second model class.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import ClassVar, Literal

# The degradation words DA-CLIP was trained with (daclip-uir README); P' = [d̂ ; s] uses a subset.
DACLIP_DEGRADATIONS = (
    "motion-blurry",
    "hazy",
    "jpeg-compressed",
    "low-light",
    "noisy",
    "raindrop",
    "rainy",
    "shadowed",
    "snowy",
    "uncompleted",
)
# The six prompts of the same group's M2Restore; T = 6 gives the 39.1M count (docs/readings.md §6).
DEFAULT_PROMPTS = ("hazy", "noisy", "raindrop", "rainy", "shadowed", "snowy")
DACLIP_EMBED_DIM = 512  # width of DA-CLIP ViT-B-32's degradation features D(I)


@dataclass(frozen=True)
class M2IRConfig:
    """The network of Fig. 2. Defaults are the paper's model (Table XIII: 39.1M w/o DA-CLIP)."""

    dim: int = 48  # C of F_0, §III-A
    num_blocks: tuple[int, ...] = (4, 6, 6, 8)  # blocks per encoder level, Restormer layout
    num_refinement_blocks: int = 4  # refinement stage at full resolution
    heads: tuple[int, ...] = (1, 2, 4, 8)  # MDTA heads per level
    ffn_expansion: float = 2.66  # GDFN γ (Restormer)
    block: Literal["mst", "transformer"] = "mst"  # Table VII: MST (eq. 1–2) or plain MDTA blocks
    # What MDTA attends over in eq. (1), §III-B (docs/readings.md §2): "literal" is
    # MDTA(σ(W_d W_l¹ X)) as printed; "modulate" MDTA(X ⊙ σ(W_d W_l¹ X)), the prose's mask that
    # "modulates" the attention; "silu" MLLA's block [28], SiLU for both σ of eq. (1)–(2).
    msa_reading: Literal["literal", "modulate", "silu"] = "literal"
    prior: Literal["daclip", "mlp", "none"] = (
        "daclip"  # Table VII: DACP from DA-CLIP, a learnable MLP, or off
    )
    special_experts: bool = True  # Table VII: DGEA specialised branch
    shared_expert: bool = True  # Table VII: DGEA shared branch E_S
    num_experts: int = 4  # N, Table VIII
    top_k: int = 2  # K, Table IX
    expert_hidden: float = 2.0  # expert MLP width r·C (docs/readings.md §9)
    ca_heads: int = 4  # heads of both CAs in ADEC (AdaIR's channel CA)
    # Initial α of ADEC's output α⊙X̃ + β⊙X̂ (β starts at 1). The paper does not give it; 0
    # (AdaIR's para1: ADEC starts as the identity) suits long schedules. Not a structure field:
    # parameter count and MACs do not depend on it.
    adec_alpha_init: float = 0.0
    # Run-time expert execution, outputs equal (to float rounding): "dense" runs every expert
    # on every pixel, one module at a time (eq. 6 as written); "grouped" the same in two
    # matmuls for all experts; "sparse" each pixel's K+1 experts only. Table XIII's MACs
    # count experts densely whatever runs. benchmarks/bench_model.py measures them.
    dispatch: Literal["dense", "grouped", "sparse"] = "sparse"
    prompts: tuple[str, ...] = DEFAULT_PROMPTS  # text descriptors of DACP, §III-C
    prior_dim: int = (
        DACLIP_EMBED_DIM  # width of d̂ in P' (DA-CLIP fixes 512; the MLP may be smaller)
    )

    # Fields added after runs were cached: while at their default they stay out of a config's
    # dict (`engine.checkpoint.config_to_dict`), so every cached run keeps its key.
    KEY_NEUTRAL: ClassVar[tuple[str, ...]] = ("msa_reading",)

    @property
    def has_adec(self) -> bool:
        """ADEC exists when DGEA has at least one branch (Table VII rows 1–2 have none)."""
        return self.special_experts or self.shared_expert

    def __post_init__(self):
        if len(self.num_blocks) != 4 or len(self.heads) != 4:
            raise ValueError("num_blocks and heads need one entry per U-Net level (4)")
        if self.special_experts and not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"top_k={self.top_k} must be in [1, num_experts={self.num_experts}]")
        for name, allowed in (
            ("block", ("mst", "transformer")),
            ("msa_reading", ("literal", "modulate", "silu")),
            ("prior", ("daclip", "mlp", "none")),
            ("dispatch", ("dense", "grouped", "sparse")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}; expected one of {allowed}")


# The all-off switches of Table VII: M²IR's backbone with plain Restormer blocks (MDTA + GDFN),
# no prior and no ADEC. The Restormer-style network of every table is built from them.
BASELINE = dict(block="transformer", prior="none", special_experts=False, shared_expert=False)


def baseline_config(cfg: M2IRConfig) -> M2IRConfig:
    """`cfg` with every M²IR component off: Table VII's all-off row, the Restormer-style network."""
    return dataclasses.replace(cfg, **BASELINE)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of §IV-A: AdamW, linear warm-up then cosine, patch 128, loss of eq. (11).

    The global batch (samples per optimizer step) is ``batch_size × grad_accum`` as written
    here for one process; with W processes the loop accumulates
    ``global_batch / (W × batch_size)`` micro-batches, so 1, 2 or 4 GPUs train on the same
    samples per step (`m2ir_lib.engine.train.accumulation`); 8 GPUs need 4 per process
    (`with_batch_size`, ``M2IR_BATCH_SIZE``, ``--batch-size``). Iteration counts here are what a run
    trains; a profile stating its budget in epochs (`Profile.epochs`) has them derived from
    the data by `m2ir_lib.workbook.experiments.schedule`.
    """

    iters: int = 4450 * 150  # AdaIR: 150 epochs of ≈4,450 it at batch 32 (docs/readings.md §12)
    warmup_iters: int = 4450 * 15  # 15 warm-up epochs, expressed in iterations
    cosine_iters: int = (
        4450 * 180
    )  # cosine horizon (AdaIR max_epochs 180), so the lr never reaches 0
    batch_size: int = 8  # per process (per GPU)
    grad_accum: int = 4  # on one process: global batch 8 × 4 = 32, the peers' (8/GPU × 4 GPUs)
    patch: int = 128
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01  # torch AdamW default, as in PromptIR/AdaIR
    lambda1: float = 0.01  # ℓ_balance weight, Table XI
    lambda2: float = 0.1  # ℓ_FFT weight, Table XII
    charbonnier: bool = True  # Table X: Charbonnier (eq. 8) or plain L1
    use_balance: bool = True  # Table X
    use_fft: bool = True  # Table X
    ckpt_every: int = 5000
    log_every: int = 50
    num_workers: int = 4
    # bf16 autocast (GPU only). Off: neither the paper nor the peers train in mixed precision;
    # turn it on explicitly (`--bf16`, or train={"amp": True}) and compare (benchmarks/).
    amp: bool = False

    @property
    def global_batch(self) -> int:
        """Samples per optimizer step, whatever the number of processes."""
        return self.batch_size * self.grad_accum


@dataclass(frozen=True)
class Epochs:
    """A training budget in epochs of a setting's (repeated) training set, and its source."""

    epochs: float
    warmup: float  # linear warm-up epochs
    horizon: float  # cosine horizon (max_epochs); beyond `epochs`, so the lr never reaches 0
    source: str

    def __post_init__(self):
        if not 0 <= self.warmup < self.horizon or self.epochs <= 0:
            raise ValueError(f"need epochs > 0 and 0 <= warmup < horizon; got {self}")


# The paper states epochs only for its ablations (§IV-C: 20 on Rain100L); the rest follow
# the peers whose data mixes it uses (README, "Training schedule").
_ADAIR = "AdaIR options.py/train.py: 150 epochs, warm-up 15, cosine max_epochs 180"
PAPER_EPOCHS: dict[str, Epochs] = {
    "3d": Epochs(150, 15, 180, _ADAIR),
    "5d": Epochs(150, 15, 180, _ADAIR),
    "cdd11": Epochs(
        120, 15, 150, "MoCE-IR (CDD11_all, its defaults): 120 epochs, warm-up 15, max_epochs 150"
    ),
    "weatherbench": Epochs(
        150, 15, 180, "no peer schedule for WeatherBench; AdaIR's all-in-one one (our choice)"
    ),
    "one-by-one": Epochs(150, 15, 180, "AdaIR's single-task runs use its all-in-one options"),
    "ablation": Epochs(
        20, 2, 24, "paper §IV-C: 20 epochs on Rain100L; warm-up and horizon as AdaIR's 15/180"
    ),
}


@dataclass(frozen=True)
class Profile:
    """What one run of the workbook means: model size, data, budget (README, "Profiles")."""

    name: str
    model: M2IRConfig
    train: TrainConfig
    data: Literal["smoke", "mini", "real"]
    ablation_train: TrainConfig = field(
        default=None
    )  # Tables VII–XII (paper: 20 epochs on Rain100L)
    eval_max_images: int | None = None  # cap per task when evaluating (None = all)
    # Budget in epochs per setting key (`experiments.budget_key`); a setting without one
    # trains `train.iters` iterations (smoke/mini). Both go through `experiments.schedule`.
    epochs: dict[str, Epochs] | None = None
    # A rehearsal (`M2IR_REHEARSAL`): iterations are capped here and every output says so.
    max_iters: int | None = None
    override: str = ""
    # Network overrides of the Restormer-style comparison network of Tables I–VI and XIII, on
    # top of the all-off switches (`BASELINE`). The paper pairs Restormer (26.1M)
    # with M²IR (39.1M), a ratio of 0.67; at mini the all-off network alone is 0.49 of M²IR,
    # because the ADECs weigh more at small width, so mini deepens its latent stage to match.
    # Table VII's all-off row keeps M²IR's backbone: it is an ablation, not the opponent.
    baseline: dict = field(default_factory=dict)
    # The tables whose headline rows train extra seeds (`tables.HEADLINE`; None: all of them).
    # Seeds go where a claim can be tested at this scale (tests/test_budget.py checks the
    # choice against the committed claims of the profile's reference run).
    seed_tables: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.ablation_train is None:
            object.__setattr__(self, "ablation_train", self.train)


PAPER = M2IRConfig()
MODEL_PRESETS: dict[str, M2IRConfig] = {
    # Dense dispatch measured a few % faster on an H200 (fwd 480×720 bf16: 140 vs 151 ms).
    "paper": dataclasses.replace(PAPER, dispatch="dense"),
    # Same blocks, 1/6 of the width (0.61M params): ~0.2 s per 4×48² training step on one
    # CPU thread, so the ~40 runs of Tables I–XII fit a laptop budget.
    "mini": dataclasses.replace(
        PAPER,
        dim=8,
        num_blocks=(1, 2, 2, 2),
        num_refinement_blocks=1,
        heads=(1, 1, 1, 2),
        prior="mlp",
        prior_dim=64,
    ),
    # A few thousand to ~100k parameters: every code path in seconds.
    "smoke": dataclasses.replace(
        PAPER,
        dim=4,
        num_blocks=(1, 1, 1, 1),
        num_refinement_blocks=1,
        heads=(1, 1, 1, 2),
        prior="mlp",
        prior_dim=32,
    ),
}

PROFILES: dict[str, Profile] = {
    "paper": Profile(
        "paper",
        MODEL_PRESETS["paper"],
        TrainConfig(),
        data="real",
        epochs=PAPER_EPOCHS,  # iterations derived from the data (Rain100L ablation: 750/epoch)
    ),
    # lr 2e-3, not the paper's 2e-4: a 0.6M-parameter model trained for a few hundred steps
    # gained most there on every 3D task (one-seed sweep 2e-4..2e-3 on an H200, mini_3d).
    # The cosine ends at 0 on the last step (the paper's horizon, 180 for 150 epochs, keeps 8 %
    # of the peak after thousands of steps per epoch): at 400 steps of batch 4, 8 % of 2e-3
    # left the final weights set by the last few batches. Measured on mini_5d, one seed, M²IR:
    # a model that brightened clean test images (+0.04 mean, 23.8 dB vs themselves) and
    # scored 5.0 dB under the blurred input; annealed to 0, every column rose 0.8–4.4 dB and
    # the dec2 ADEC engaged (switching it off then costs 0.6–1.2 dB; before, 0.00).
    "mini": Profile(
        "mini",
        MODEL_PRESETS["mini"],
        TrainConfig(
            iters=400,
            warmup_iters=40,
            cosine_iters=400,
            batch_size=4,
            grad_accum=1,
            patch=48,
            lr=2e-3,
            ckpt_every=100,
            log_every=10,
            num_workers=0,
            amp=False,
        ),
        data="mini",
        # 1-2-2-4 blocks: 408,565 parameters, 0.667 of M²IR's 612,705 (1-2-2-2: 0.49).
        baseline={"num_blocks": (1, 2, 2, 4)},
        ablation_train=TrainConfig(
            iters=150,
            warmup_iters=15,
            cosine_iters=150,
            batch_size=4,
            grad_accum=1,
            patch=48,
            lr=2e-3,
            ckpt_every=50,
            log_every=10,
            num_workers=0,
            amp=False,
        ),
        # Table I's claims are testable with three seeds; every claim of Tables VII–XII is
        # far below what this scale detects, so extra seeds there would only repeat them.
        seed_tables=("I", "VI"),
    ),
    "smoke": Profile(
        "smoke",
        MODEL_PRESETS["smoke"],
        TrainConfig(
            iters=4,
            warmup_iters=1,
            cosine_iters=5,
            batch_size=1,
            grad_accum=2,
            patch=32,
            ckpt_every=2,
            log_every=1,
            num_workers=0,
            amp=False,
        ),
        data="smoke",
        eval_max_images=2,
    ),
}


def check_profile(profile) -> Profile:
    """`profile` itself when it is a resolved `Profile`; else a TypeError that says how to get
    one. The library is handed the object that a notebook or command line resolved once
    (`get_profile`), so a name passed by habit fails here, not deep inside a run."""
    if isinstance(profile, Profile):
        return profile
    hint = f"get_profile({profile!r})" if isinstance(profile, str) else "get_profile(name)"
    raise TypeError(
        f"expected a resolved Profile, got {type(profile).__name__} {profile!r}: resolve the "
        f"name once at the top of the notebook or script with {hint} and pass that object"
    )


REHEARSAL_ENV = "M2IR_REHEARSAL"
BATCH_ENV = "M2IR_BATCH_SIZE"  # per-process batch of every run (`with_batch_size`)


def with_batch_size(prof: Profile, batch_size: int) -> Profile:
    """`prof` training `batch_size` samples per process and micro-batch, with the same global
    batch (its accumulation grows to match): the setting for a GPU with less memory, or for
    more GPUs than the global batch has room for at 8 each (8 GPUs: 4).

    The split is part of a run's identity (the balance loss of eq. (9) is taken over each
    micro-batch), so runs at another batch size are trained and cached apart.

    Raises:
        ValueError: `batch_size` does not divide a global batch of the profile (names those
            that do).
    """
    out = {}
    for name in ("train", "ablation_train"):
        tc: TrainConfig = getattr(prof, name)
        g = tc.global_batch
        if not isinstance(batch_size, int) or batch_size < 1 or g % batch_size:
            fits = [b for b in range(1, g + 1) if g % b == 0]
            raise ValueError(
                f"batch size {batch_size!r}: profile {prof.name!r} trains a global batch of {g} "
                f"samples per step; give a per-process batch that divides it: {fits}"
            )
        out[name] = dataclasses.replace(tc, batch_size=batch_size, grad_accum=g // batch_size)
    return dataclasses.replace(prof, **out)


def get_profile(name: str) -> Profile:
    """The named profile, or a clear error listing the known ones.

    With ``M2IR_REHEARSAL`` set (e.g. ``network=smoke,iters=1,patch=32,eval_images=2``) the
    profile keeps its data, planning, schedule, global batch, repeats and evaluation, but
    trains the named preset's network for at most ``iters`` iterations on ``patch``² crops
    (default: the profile's) and scores at most ``eval_images`` images per task;
    `Profile.override` says so and every table written carries it in its notes.
    ``M2IR_BATCH_SIZE=N`` trains N samples per process and micro-batch (`with_batch_size`).
    """
    try:
        prof = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known: {sorted(PROFILES)}") from None
    spec = os.environ.get(REHEARSAL_ENV, "").strip()
    prof = rehearsal(prof, spec) if spec else prof
    batch = os.environ.get(BATCH_ENV, "").strip()
    if batch:
        try:
            prof = with_batch_size(prof, int(batch))
        except ValueError as err:
            raise ValueError(f"{BATCH_ENV}={batch!r}: {err}") from None
    return prof


def rehearsal(prof: Profile, spec: str) -> Profile:
    """`prof` with a smaller network and an iteration cap (`get_profile`, ``M2IR_REHEARSAL``)."""
    known = {"network", "iters", "eval_images", "patch"}
    try:
        kv = dict(item.split("=", 1) for item in spec.split(","))
        bad = sorted(set(kv) - known)
        if bad or kv.get("network", "smoke") not in MODEL_PRESETS:
            raise ValueError(f"unknown key(s) {bad} or network {kv.get('network')!r}")
        net, iters = kv.get("network", "smoke"), int(kv.get("iters", 2))
        images = int(kv.get("eval_images", 1))
        patch = int(kv.get("patch", prof.train.patch))
    except ValueError as err:
        raise ValueError(
            f"{REHEARSAL_ENV}={spec!r}: expected e.g. "
            "'network=smoke,iters=1,patch=32,eval_images=2' "
            f"(network one of {sorted(MODEL_PRESETS)}; {err})"
        ) from None
    note = (
        f"REHEARSAL (not a result): {net} network, at most {iters} iteration(s), "
        f"{patch}² crops, {images} test image(s) per task"
    )
    return dataclasses.replace(
        prof,
        model=MODEL_PRESETS[net],
        max_iters=iters,
        eval_max_images=images,
        override=note,
        train=dataclasses.replace(prof.train, num_workers=0, patch=patch),
        ablation_train=dataclasses.replace(prof.ablation_train, num_workers=0, patch=patch),
    )
