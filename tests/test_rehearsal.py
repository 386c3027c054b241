"""The paper-scale path, rehearsed (issue 9): the real-data code on a fake data root.

`data_prep.rehearsal` writes every data set in its published layout (tiny random images,
2 pairs each); `data_prep all --allow-partial` reads it; then every table notebook (03–15)
runs at profile `paper` with ``M2IR_REHEARSAL``: the paper profile's planning, epoch
schedule, global batch, repeats and evaluation, with only the network, the iteration count
and the crop size shrunk. Each table gets a CSV whose every reproduced row says it is a
rehearsal, and the transcription in results/reported/ is untouched.
"""

import hashlib
import json

import pytest

from data_prep.__main__ import main as data_prep_main
from data_prep.rehearsal import write_rehearsal_root
from m2ir_lib import pipeline
from m2ir_lib.workbook import results

REHEARSAL = "network=smoke,iters=1,patch=32,eval_images=2"


def _digest(folder):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ≈13 notebooks; see README for the measured time
def test_paper_profile_rehearsal_end_to_end(tmp_path, monkeypatch):
    root = write_rehearsal_root(tmp_path / "root", pairs=2)
    assert data_prep_main(["all", "--root", str(root), "--allow-partial",
                           "--out", str(tmp_path / "manifests")]) == 0  # fmt: skip
    for k, v in {
        "M2IR_REHEARSAL": REHEARSAL,
        "M2IR_ALLOW_PARTIAL": "1",
        "M2IR_DATA": str(root),
        "M2IR_RESULTS": str(tmp_path / "results"),
        "M2IR_RUNS": str(tmp_path / "runs"),
        "M2IR_MANIFESTS": str(tmp_path / "manifest-cache"),
        "OMP_NUM_THREADS": "1",
    }.items():
        monkeypatch.setenv(k, v)
    reported = _digest(results.reported_dir())
    names = [p.stem.split("_")[0] for p in pipeline.notebooks()]
    for nb in [n for n in names if "03" <= n <= "14"]:
        pipeline.run("paper", only=nb)
    # The rivals' efficiency rows need no data: the smoke run of notebook 15 covers them.
    pipeline.run("paper", only="15", parameters={"paper_macs": "no", "rivals": False})

    out = tmp_path / "results" / "paper"
    for roman, spec in results.TABLES.items():
        df = results.read_results("paper", roman)
        ours = df[df["source"] == "reproduced"]
        assert not ours.empty and ours["note"].str.contains("REHEARSAL").all(), roman
        if roman != "XIII":  # a trained-and-scored number, not only status rows
            scored = ours[(ours["metric"] != results.STATUS) & ours["value"].notna()]
            assert not scored.empty, (roman, ours[["method", "task", "note"]].head())
            assert (ours["profile"] == "paper").all()
        assert (out / f"{spec.stem}.csv").is_file()
    # Real-data rows, not the stand-in's: the data column names the paper's data sets.
    t1 = results.read_results("paper", "I")
    assert t1.loc[t1["source"] == "reproduced", "data"].str.contains("Rain100L").all()
    # The derived schedule (paper epochs -> iterations) was printed before training.
    nb03 = json.loads((out / "notebooks" / "03_table_I_3d.ipynb").read_text())
    text = "".join("".join(o.get("text", "")) for c in nb03["cells"] for o in c.get("outputs", []))
    assert "schedule [3d]" in text and "150 epochs" in text and "capped from" in text
    # Repeats of the 3D mix reached the trained runs (AdaIR's, per setting).
    metas = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "paper").glob("*/meta.json")]
    assert {"denoise": 3, "dehaze": 1, "derain": 120} in [m["repeats"] for m in metas]
    assert {"dehaze": 1, "derain": 1, "desnow": 1} in [m["repeats"] for m in metas]
    assert all(m["global_batch"] == 32 and m["precision"] == "fp32" for m in metas)
    assert _digest(results.reported_dir()) == reported
