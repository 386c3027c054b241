"""ADEC use report (m2ir_lib.workbook.adec), the α initialisation and the sized mini baseline."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from m2ir_lib.core import config
from m2ir_lib.core.config import MODEL_PRESETS, get_profile
from m2ir_lib.core.model import M2IR
from m2ir_lib.engine import probes
from m2ir_lib.workbook import adec, claims, experiments, settings

SMOKE = MODEL_PRESETS["smoke"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _params(cfg):
    return sum(p.numel() for p in M2IR(cfg).parameters())


def test_alpha_init_is_a_value_not_a_structure():
    torch.manual_seed(0)
    off = M2IR(SMOKE)
    torch.manual_seed(0)
    on = M2IR(dataclasses.replace(SMOKE, adec_alpha_init=0.5))
    assert all((m.alpha == 0).all() for m in off.adecs)
    assert all((m.alpha == 0.5).all() and (m.beta == 1).all() for m in on.adecs)
    assert _params(SMOKE) == _params(dataclasses.replace(SMOKE, adec_alpha_init=0.5))
    x = torch.rand(1, 3, 32, 32)
    assert not torch.allclose(off(x), on(x))  # the branch now reaches the output
    with probes.adec_off(on):
        torch.testing.assert_close(on(x), off(x))  # same weights, α = 0: identical


def test_adec_gates_reads_alpha_and_beta():
    model = M2IR(SMOKE)
    with torch.no_grad():
        model.adecs[1].alpha[0, :2] = torch.tensor([-0.3, 0.1])[:, None, None]
        model.adecs[2].beta.fill_(0.9)
    g = probes.adec_gates(model)
    assert list(g["position"]) == ["latent", "dec3", "dec2"]
    assert list(g["channels"]) == [8 * SMOKE.dim, 4 * SMOKE.dim, 2 * SMOKE.dim]
    assert g.loc[0, "alpha_abs_max"] == 0
    assert g.loc[1, "alpha_abs_max"] == pytest.approx(0.3)
    assert g.loc[1, "alpha_abs_mean"] == pytest.approx(0.4 / (4 * SMOKE.dim))
    assert g.loc[2, "beta_mean"] == pytest.approx(0.9) and g.loc[2, "beta_dev"] == pytest.approx(
        0.1
    )
    base = M2IR(dataclasses.replace(SMOKE, **config.BASELINE))
    assert probes.adec_gates(base).empty


def test_branch_share_is_zero_when_closed_and_positive_when_open():
    images = [torch.rand(3, 32, 32), torch.rand(1, 3, 40, 24)]
    closed = probes.branch_share(M2IR(SMOKE), images)
    assert list(closed["position"]) == ["latent", "dec3", "dec2"] and (closed["share"] == 0).all()
    model = M2IR(dataclasses.replace(SMOKE, adec_alpha_init=1.0))
    opened = probes.branch_share(model, images)
    assert (opened["share"] > 0).all()
    doubled = dataclasses.replace(SMOKE, adec_alpha_init=2.0)
    torch.manual_seed(0)
    a = probes.branch_share(M2IR(dataclasses.replace(SMOKE, adec_alpha_init=1.0)), images)
    torch.manual_seed(0)
    b = probes.branch_share(M2IR(doubled), images)
    # the first ADEC sees the same X̂ in both (later ones see the first one's output)
    assert b.loc[0, "share"] == pytest.approx(2 * a.loc[0, "share"], rel=1e-5)
    with pytest.raises(ValueError, match="no images"):
        probes.branch_share(model, [])


def test_adec_off_restores_alpha_even_on_error():
    model = M2IR(dataclasses.replace(SMOKE, adec_alpha_init=0.25))
    with pytest.raises(RuntimeError), probes.adec_off(model):
        assert all((m.alpha == 0).all() for m in model.adecs)
        raise RuntimeError("boom")
    assert all((m.alpha == 0.25).all() for m in model.adecs)


def test_adec_ablation_scores_on_and_off(tmp_path):
    from data_prep.mini import build

    paths = build(tmp_path / "smoke", seed=0, size="smoke")
    torch.manual_seed(0)
    model = M2IR(dataclasses.replace(SMOKE, adec_alpha_init=1.0))
    per_image, summary = adec.adec_ablation(model, paths["mini_3d"], data_root=tmp_path / "smoke")
    assert set(summary["task"]) == {"denoise", "derain", "dehaze"}
    assert summary["n"].sum() == len(per_image) > 0
    torch.testing.assert_close(
        torch.tensor(per_image["delta_psnr"].values),
        torch.tensor((per_image["psnr_on"] - per_image["psnr_off"]).values),
    )
    assert (per_image["delta_psnr"].abs() > 0).all()  # α = 1: the branch changes every output
    assert all((m.alpha == 1).all() for m in model.adecs)  # restored afterwards
    # α = 0 everywhere: switching the branch off changes nothing.
    _, same = adec.adec_ablation(M2IR(SMOKE), paths["mini_3d"], data_root=tmp_path / "smoke")
    assert (same["delta_psnr"] == 0).all()
    with pytest.raises(ValueError, match="no ADEC"):
        adec.adec_ablation(M2IR(dataclasses.replace(SMOKE, **config.BASELINE)), paths["mini_3d"])


def test_mini_baseline_has_the_papers_parameter_ratio():
    mini = get_profile("mini")
    m2ir = _params(mini.model)
    base = _params(
        dataclasses.replace(mini.model, **experiments.restormer_baseline(get_profile("mini")))
    )
    assert base / m2ir == pytest.approx(26.1 / 39.1, abs=0.02)
    # The paper profile's opponent is the all-off network itself (Restormer's layout).
    assert experiments.restormer_baseline(get_profile("paper")) == config.BASELINE
    # Table VII's all-off row stays M²IR's backbone (an ablation, not the opponent).
    ablation = _params(dataclasses.replace(mini.model, **config.BASELINE))
    assert ablation < base


def test_table_runs_use_the_sized_baseline(monkeypatch):
    from m2ir_lib.workbook import tables

    fake = settings.Data("3d", None, None, "stand-in", "not built in this test")
    monkeypatch.setattr(tables, "locate", lambda *a, **k: fake)  # no mini build
    runs = {r.label: r for r in tables.table_runs("I", get_profile("mini"))}
    base = runs["Restormer-style (ours, mini)"]
    assert base.model.num_blocks == (1, 2, 2, 4) and base.model.block == "transformer"
    assert runs["M²IR (ours, mini)"].model.num_blocks == (1, 2, 2, 2)


# ---------------------------------------------------------------------------- Tables I–V report


def _saved(model, path):
    """A checkpoint of `model` as training writes it (`checkpoint.save_checkpoint`)."""
    from m2ir_lib.engine.checkpoint import config_to_dict, save_checkpoint

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    path.parent.mkdir(parents=True)
    meta = {"model_cfg": config_to_dict(model.cfg)}
    return save_checkpoint(path, model, opt, sched, 0, meta)


@pytest.fixture(scope="module")
def smoke_3d(tmp_path_factory):
    from data_prep.mini import build

    root = tmp_path_factory.mktemp("adec") / "smoke"
    paths = build(root, seed=0, size="smoke")
    return settings.Data("3d", paths["mini_3d"], root, "smoke stand-in")


def _table_i(tmp_path, data, alpha):
    """Table I's runs (M²IR with two seeds, the Restormer-style row) with saved checkpoints."""
    from m2ir_lib.workbook import tables

    cfg = dataclasses.replace(SMOKE, adec_alpha_init=alpha)
    m2ir = experiments.plan(
        "M²IR (ours, smoke)", get_profile("smoke"), data, model={"adec_alpha_init": alpha}
    )
    seed1 = dataclasses.replace(m2ir, seed=1, label=f"{m2ir.label}{tables.SEED_TAG}1")
    base = experiments.plan("Restormer-style", get_profile("smoke"), data, model=config.BASELINE)
    ckpts = {}
    for i, r in enumerate([m2ir, seed1]):
        torch.manual_seed(i)
        ckpts[r.label] = _saved(M2IR(cfg), tmp_path / f"run{i}" / "final.pt")
    return [m2ir, seed1, base], ckpts


def test_table_summary_one_row_per_position_and_column(tmp_path, smoke_3d, monkeypatch):
    from m2ir_lib.workbook import results, scoring

    runs, ckpts = _table_i(tmp_path, smoke_3d, alpha=1.0)
    s = adec.table_summary("I", runs, ckpts, profile=get_profile("smoke"))
    assert list(s.columns) == adec.ADEC_COLUMNS
    assert set(s["seed"]) == {0, 1} and set(s["method"]) == {"M²IR (ours, smoke)"}  # no baseline
    columns = ["dehaze", "derain", "denoise-15", "denoise-25", "denoise-50"]
    for _, d in s.groupby("seed"):
        gates = d[d["quantity"] != adec.CHANGE]
        assert sorted(gates.groupby(["quantity", "position"]).size()) == [1] * 9
        assert set(gates["position"]) == set(probes.POSITIONS) and (gates["task"] == "").all()
        change = d[d["quantity"] == adec.CHANGE]
        assert sorted(change["task"]) == sorted([*columns, results.AVERAGE])
        assert (change["position"] == adec.ALL).all()
    change = s[s["quantity"] == adec.CHANGE]
    assert ((change["ci_low"] <= change["value"]) & (change["value"] <= change["ci_high"])).all()
    cols = change[change["task"] != results.AVERAGE]
    np.testing.assert_allclose(cols["value"], cols["psnr_off"] - cols["psnr_on"], atol=1e-9)
    avg = change[change["task"] == results.AVERAGE].set_index("seed")["value"]
    np.testing.assert_allclose(avg, cols.groupby("seed")["value"].mean(), atol=1e-9)
    alpha = s[(s["quantity"] == "alpha_abs_mean")]["value"]
    assert list(alpha) == pytest.approx([1.0] * 6)  # α = 1 as initialised and saved
    # Independently: adec_ablation on the same images gives the same per-task change.
    model = M2IR(dataclasses.replace(SMOKE, adec_alpha_init=1.0))
    model.load_state_dict(torch.load(ckpts[runs[0].label], weights_only=False)["model"])
    _, ref = adec.adec_ablation(model, smoke_3d, max_images=get_profile("smoke").eval_max_images)
    noise15 = ref[(ref["task"] == "denoise") & (ref["sigma"] == 15)]["delta_psnr"].item()
    got = cols[(cols["seed"] == 0) & (cols["task"] == "denoise-15")]["value"].item()
    assert got == pytest.approx(-noise15, abs=1e-6) and got != 0
    # Both passes are cached beside the checkpoint: a second call evaluates nothing.
    assert list(ckpts[runs[0].label].parent.glob("eval-adec-off-*.csv"))
    monkeypatch.setattr(scoring, "evaluate", lambda *a, **k: pytest.fail("re-evaluated"))
    again = adec.table_summary("I", runs, ckpts, profile=get_profile("smoke"))
    pd.testing.assert_frame_equal(again, s)
    path = adec.write_adec(s, "smoke", "I", root=tmp_path)
    assert path.name == "table1_3d_adec.csv" and len(pd.read_csv(path)) == len(s)
    with pytest.raises(ValueError, match="lack columns"):
        adec.write_adec(s.drop(columns="ci_low"), "smoke", "I", root=tmp_path)


def test_branch_that_changes_nothing_is_inert(tmp_path, smoke_3d):
    runs, ckpts = _table_i(tmp_path, smoke_3d, alpha=0.0)
    images = adec.branch_off_images("I", runs[:1], ckpts, profile=get_profile("smoke"))
    s = adec.table_summary("I", runs[:1], ckpts, profile=get_profile("smoke"), images=images)
    change = s[s["quantity"] == adec.CHANGE]
    assert (change["value"] == 0).all()
    assert (change["n"] == 2).all()  # the smoke set's two photographs, not its images
    assert {adec.change_verdict(r) for _, r in change.iterrows()} == {adec.INERT}
    text = adec.adec_text(s).data
    assert "changes PSNR by +0.00 dB [+0.00, +0.00] on derain" in text
    assert "of 5: 5 inert at this scale" in text and "seed" not in text  # one seed: not named
    rows = adec.claim_rows("I", s, images)
    assert [r["verdict"] for r in rows] == [adec.INERT, adec.DESCRIPTIVE]
    assert rows[0]["source"] == "ADEC (Table I)" and rows[0]["n_units"] == 2


def _change(task, value, low, high, seed=0):
    return dict(method="M²IR (ours, mini)", seed=seed, quantity=adec.CHANGE, position=adec.ALL,
                task=task, value=value, n=16, ci_low=low, ci_high=high, psnr_on=30.0,
                psnr_off=30.0 + value)  # fmt: skip


def test_adec_text_follows_the_sign_and_the_interval():
    gates = [
        dict(
            method="M²IR (ours, mini)",
            seed=0,
            quantity="alpha_abs_mean",
            position=p,
            task="",
            value=v,
        )  # fmt: skip
        for p, v in zip(probes.POSITIONS, (0.5, 0.02, 0.0012), strict=True)
    ]
    rows = [
        _change("dehaze", -0.5, -0.7, -0.3),  # off is worse: the branch helps
        _change("derain", 0.4, 0.1, 0.6),  # off is better
        _change("denoise-25", -0.1, -0.3, 0.1),  # the images do not decide
        _change("deblur", 0.002, -0.004, 0.008),  # decided, but below printed precision
        _change("Average", -0.05, -0.12, 0.01),
    ]
    s = pd.DataFrame(gates + rows, columns=adec.ADEC_COLUMNS)
    verdicts = [adec.change_verdict(r) for _, r in s.iloc[3:].iterrows()]
    assert verdicts == ["supports", "contradicts", "cannot resolve", adec.INERT,
                        "cannot resolve"]  # fmt: skip
    text = adec.adec_text(s).data
    assert "mean |α| per ADEC: latent 0.5, dec3 0.02, dec2 0.0012" in text
    assert "changes PSNR by -0.50 dB [-0.70, -0.30] on dehaze (30.00 → 29.50 dB, n=16)" in text
    assert "on derain (30.00 → 30.40 dB, n=16): contradicts the claim" in text
    assert "on deblur" in text and "within ±0.01 dB" in text
    # the Average is not counted
    assert "of 4: 1 supports, 1 contradicts, 1 cannot resolve, 1 inert at this scale" in text
    assert "nothing to say" in adec.adec_text(s.iloc[:0]).data


# ---------------------------------------------------------------------------- claim rows

TABLE_I = ["dehaze", "derain", "denoise-15", "denoise-25", "denoise-50"]


def _branch_images(effect, spread, seeds=(0, 1), photographs=4, tiles=4, seed=0):
    """`branch_off_images`-like rows of Table I: PSNR as trained and with the branch off, the
    branch adding `effect` dB on average; most of the spread between photographs."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in seeds:
        shift = rng.normal(0, spread)  # this run's seed luck
        for p in range(photographs):
            photo = rng.normal(0, spread)
            for task in TABLE_I:
                for t in range(tiles):
                    on = 25 + rng.normal(0, 1)
                    gain = effect + shift + photo + rng.normal(0, spread / 4)
                    rows.append(dict(table="I", method="M²IR", run=f"r{s}", seed=s, task=task,
                                     dataset="mini", sigma=np.nan, image=f"p{p}_t{t}",
                                     unit=f"p{p}", metric="PSNR", value=on,
                                     value_off=on - gain))  # fmt: skip
    return pd.DataFrame(rows, columns=adec.IMAGE_COLUMNS)


def _summary(images, alpha=(0.02, 0.01, 0.03)):
    """The `table_summary` rows `claim_rows` reads: the columns covered and |α| per seed."""
    rows = []
    for s in sorted(set(images["seed"])):
        for p, a in zip(probes.POSITIONS, alpha, strict=True):
            rows.append(dict(method="M²IR", seed=s, quantity="alpha_abs_mean", position=p,
                             task="", value=a * (1 + s / 10)))  # fmt: skip
        rows += [dict(method="M²IR", seed=s, quantity=adec.CHANGE, position=adec.ALL, task=t)
                 for t in [*TABLE_I, "Average"]]  # fmt: skip
    return pd.DataFrame(rows, columns=adec.ADEC_COLUMNS)


def test_claim_rows_find_a_known_branch_effect_over_photographs_and_seeds(tmp_path):
    images = _branch_images(effect=0.5, spread=0.02)
    rows = adec.claim_rows("I", _summary(images), images)
    effect, alpha = rows
    assert effect["source"] == alpha["source"] == "ADEC (Table I)"
    assert effect["kind"] == "paper" and alpha["kind"] == "extra"
    assert effect["n_units"] == 4 and effect["n_seeds"] == 2  # photographs, not tiles
    on_off = images["value"] - images["value_off"]
    assert effect["estimate"] == pytest.approx(on_off.mean())  # every column holds 16 images
    assert effect["ci_low"] < 0.5 < effect["ci_high"] and effect["verdict"] == "supports"
    assert effect["detectable"] < 0.5
    assert alpha["estimate"] == pytest.approx(np.mean([0.02, 0.01, 0.03]) * 1.05)
    assert alpha["n_seeds"] == 2 and alpha["ci_low"] < alpha["estimate"] < alpha["ci_high"]
    again = adec.claim_rows("I", _summary(images), images)  # seeded: the same rows again
    pd.testing.assert_frame_equal(pd.DataFrame(rows), pd.DataFrame(again))
    text = adec.claims_caption(rows).data
    assert (
        f"{effect['estimate']:+.2f} dB [{effect['ci_low']:+.2f}, {effect['ci_high']:+.2f}]" in text
    )
    assert "4 independent units × 2 seeds" in text and "**supports**" in text
    path = adec.write_adec_claims(rows, "smoke", "I", root=tmp_path)
    assert path.name == "table1_3d_adec_claims.csv"
    assert list(pd.read_csv(path).columns) == claims.CLAIM_COLUMNS


def test_claim_rows_call_a_tiny_effect_inert_and_a_noisy_one_unresolved():
    tiny = _branch_images(effect=0.0005, spread=0.0005)
    effect = adec.claim_rows("I", _summary(tiny), tiny)[0]
    assert abs(effect["estimate"]) < adec.NEGLIGIBLE_DB and effect["verdict"] == adec.INERT
    assert (
        "inert at this scale** (the whole interval within ±0.01 dB)"
        in adec.claims_caption(adec.claim_rows("I", _summary(tiny), tiny)).data
    )
    noisy = _branch_images(effect=0.0, spread=0.5)
    effect = adec.claim_rows("I", _summary(noisy), noisy)[0]
    assert effect["ci_low"] < 0 < effect["ci_high"] and effect["verdict"] == "cannot resolve"
    assert "independent units (now 4)" in effect["design"]
    assert adec.claim_rows("I", _summary(noisy).iloc[:0], noisy) == []
