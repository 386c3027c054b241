"""DA-CLIP structure, strict checkpoint loading and the P' prior of DACP (eq. (3), §III-C).

A tiny open_clip config stands in for ViT-B-32 except in the structure test; nothing downloads.
"""

import json

import open_clip
import pytest
import torch

from m2ir_lib.core.daclip import (
    CHECKPOINT_NAME,
    DaCLIP,
    DaCLIPPrior,
    clip_preprocess,
    load_daclip,
    load_daclip_prior,
    random_daclip,
)

TINY = "m2ir-test-tiny-clip"
TINY_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
PROMPTS = ("hazy", "noisy", "rainy")


@pytest.fixture(scope="module")
def tiny_name(tmp_path_factory):
    path = tmp_path_factory.mktemp("clipcfg") / f"{TINY}.json"
    path.write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(path)
    return TINY


def _steered(model: DaCLIP) -> DaCLIP:
    """Give the zero connections weights so that the controller changes CLIP's output."""
    with torch.no_grad():
        for zero in model.visual_control.transformer.zero_modules:
            zero.weight.normal_(0, 0.05)
            zero.bias.normal_(0, 0.05)
    return model.eval()


def test_tiny_layout_has_alias_and_zero_connections(tiny_name):
    model = random_daclip(tiny_name)
    keys = model.state_dict().keys()
    clip_visual = [k for k in keys if k.startswith("clip.visual.")]
    assert sorted("clip." + k for k in keys if k.startswith("visual.")) == sorted(clip_visual)
    assert model.visual is model.clip.visual
    assert "visual_control.transformer.zero_modules.1.weight" in keys
    assert "visual_control.transformer.transformer.resblocks.1.mlp.c_fc.weight" in keys
    assert "logit_scale" in keys and "clip.logit_scale" in keys
    zeros = model.visual_control.transformer.zero_modules
    assert len(zeros) == 2 and all(int(torch.count_nonzero(p)) == 0 for p in zeros.parameters())


def test_zero_controller_leaves_clip_unchanged(tiny_name):
    model = random_daclip(tiny_name).eval()
    x = torch.randn(2, 3, 32, 32)
    feats, degra = model.encode_image(x, control=True)
    torch.testing.assert_close(feats, model.clip.encode_image(x))
    torch.testing.assert_close(degra, model.clip.encode_image(x))  # the controller is a copy


def test_controller_hiddens_enter_in_reverse_order(tiny_name):
    model = random_daclip(tiny_name).eval()
    with torch.no_grad():  # only the deepest connection is non-zero: it must feed block 0
        model.visual_control.transformer.zero_modules[-1].bias.fill_(0.5)
    seen = {}
    blocks = model.clip.visual.transformer.resblocks
    blocks[0].register_forward_hook(lambda m, i, o: seen.__setitem__("out0", o))
    blocks[1].register_forward_hook(lambda m, i, o: seen.__setitem__("in1", i[0]))
    model.encode_image(torch.randn(1, 3, 32, 32), control=True)
    torch.testing.assert_close(seen["in1"], seen["out0"] + 0.5)


def test_checkpoint_roundtrip_strict(tiny_name, tmp_path):
    model = _steered(random_daclip(tiny_name))
    wrapped = {"epoch": 3, "state_dict": {"module." + k: v for k, v in model.state_dict().items()}}
    torch.save(wrapped, tmp_path / CHECKPOINT_NAME)
    loaded = load_daclip(tmp_path / CHECKPOINT_NAME, tiny_name)
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    x = torch.randn(2, 3, 32, 32)
    for a, b in zip(loaded.encode_image(x), model.encode_image(x), strict=True):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(*model.encode_image(x))  # steered: a real test of the controller


def test_checkpoint_without_alias_still_loads(tiny_name, tmp_path):
    model = _steered(random_daclip(tiny_name))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("visual.")}
    torch.save(state, tmp_path / "dedup.pt")
    loaded = load_daclip(tmp_path / "dedup.pt", tiny_name)
    torch.testing.assert_close(loaded.visual.proj, model.visual.proj)


def test_mismatched_keys_are_listed(tiny_name, tmp_path):
    state = random_daclip(tiny_name).state_dict()
    state.pop("visual_control.transformer.zero_modules.0.bias")
    state["visual_control.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(RuntimeError, match=r"1 missing.*zero_modules\.0\.bias.*1 unexpected"):
        load_daclip(tmp_path / "bad.pt", tiny_name)


def test_missing_file_says_where_and_fallback(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"{CHECKPOINT_NAME}.*prior='mlp'"):
        load_daclip(tmp_path / "absent.pt")
    with pytest.raises(FileNotFoundError, match="prior='mlp'"):
        load_daclip_prior(None, PROMPTS)


def test_preprocess_resizes_crops_and_normalises():
    x = torch.full((2, 3, 40, 90), 0.5)
    y = clip_preprocess(x, (32, 32))
    assert y.shape == (2, 3, 32, 32)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(y, ((0.5 - mean) / std).expand_as(y))


def test_prior_shape_and_text_tower_runs_once(tiny_name, monkeypatch):
    daclip = _steered(random_daclip(tiny_name))
    prior = DaCLIPPrior(daclip, PROMPTS)
    assert prior.out_dim == 64 + len(PROMPTS) and prior.text_features.shape == (3, 64)

    def no_text(*args, **kwargs):
        raise AssertionError("the text tower ran inside forward")

    monkeypatch.setattr(daclip, "encode_text", no_text)
    monkeypatch.setattr(daclip.clip, "encode_text", no_text)
    prior.train()  # the enclosing model trains; DA-CLIP must not
    assert not prior.daclip.training
    image = torch.rand(2, 3, 48, 40, requires_grad=True)
    p = prior(image)
    assert p.shape == (2, 64 + 3) and not p.requires_grad
    torch.testing.assert_close(p[:, :64].norm(dim=1), torch.ones(2))
    torch.testing.assert_close(p[:, 64:].sum(dim=1), torch.ones(2))
    assert not torch.equal(p[0], p[1])  # depends on the image


def test_prior_rejects_bad_input(tiny_name):
    daclip = random_daclip(tiny_name)
    with pytest.raises(ValueError, match="prompts"):
        DaCLIPPrior(daclip, [])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        DaCLIPPrior(daclip, PROMPTS)(torch.rand(3, 32, 32))


def test_vit_b32_structure_matches_public_checkpoint():
    """The public checkpoint: 631 keys, 246.21M unique parameters (334.06M summed over keys)."""
    model = random_daclip()
    state = model.state_dict()
    assert len(state) == 631
    assert sum(1 for k in state if k.startswith("visual_control.")) == 176
    assert sum(p.numel() for p in model.parameters()) == 246_213_634
    assert sum(v.numel() for v in state.values()) == pytest.approx(334.06e6, rel=1e-4)


@pytest.mark.slow
def test_build_model_loads_a_vit_b32_checkpoint(tmp_path):
    """The public path: a daclip_ViT-B-32.pt-shaped file -> networks.build_model -> restore."""
    import dataclasses

    from m2ir_lib.core.config import DACLIP_EMBED_DIM, MODEL_PRESETS
    from m2ir_lib.core.networks import build_model

    path = tmp_path / CHECKPOINT_NAME
    torch.save({"state_dict": random_daclip().state_dict()}, path)
    cfg = dataclasses.replace(MODEL_PRESETS["mini"], prior="daclip", prior_dim=DACLIP_EMBED_DIM)
    model = build_model(cfg, str(path)).eval()
    assert isinstance(model.prior_encoder, DaCLIPPrior)
    assert model.prior_encoder.out_dim == cfg.prior_dim + len(cfg.prompts)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 40, 48)).shape == (1, 3, 40, 48)
