"""Connectivity tables and population layout (docs/paper/fig4-5-celltype-rnn.md, sections 1-2)."""

import shutil

import numpy as np
import pytest

from biornn.core.errors import BiornnError
from biornn.nn import connectivity as C


def test_within_area_table_matches_spec():
    table = C.load_within_area()
    assert len(table) == 144
    assert table["probability"].between(0, 1).all()
    full = C.within_area_matrix(table, C.TABLE_LAYERS)  # [post, pre] over (L2/3, L4, L5, L6) x types
    idx = {(l, t): i for i, (l, t) in enumerate((l, t) for l in C.TABLE_LAYERS for t in C.TYPES)}
    assert full[idx[("L2/3", "SST")], idx[("L2/3", "Pyr")]] == 0.30  # pre L2/3 Pyr -> post L2/3 SST
    assert full[idx[("L2/3", "Pyr")], idx[("L4", "SST")]] == 0.33
    assert full[idx[("L6", "VIP")], idx[("L6", "SST")]] == 0.15
    sub = full[:9, :9]
    assert (sub == 0).sum() == 25 and sub.max() == 0.33


def test_inter_area_pathways():
    inter = C.load_inter_area()
    assert len(inter) == 9 and set(inter["pathway"]) == {"FF", "FB_L23", "FB_L5"}
    assert (inter["probability"] == 0.3).all() and (inter["pre_type"] == "Pyr").all()
    blocks = C.pathway_blocks(inter)
    lab = C.POPULATION_LABELS
    assert [(lab[a], lab[b]) for a, b in blocks["FF"]] == [(f"LM_L4_{t}", "V1_L2/3_Pyr") for t in C.TYPES]
    assert {lab[a] for a, _ in blocks["FB_L5"]} == {f"V1_L5_{t}" for t in C.TYPES}


def test_population_layout():
    pops = C.populations()
    assert len(pops) == 18 and pops["stop"].iloc[-1] == 1440
    row = pops.set_index("label")
    assert tuple(row.loc["V1_L2/3_Pyr", ["start", "stop"]]) == (240, 432)
    assert tuple(row.loc["LM_L4_SST", ["start", "stop"]]) == (912, 944)
    assert tuple(row.loc["LM_L5_VIP", ["start", "stop"]]) == (1424, 1440)
    assert list(pops["label"][:3]) == ["V1_L4_Pyr", "V1_L4_SST", "V1_L4_VIP"]
    assert (pops["sign"] == pops["type"].map(C.SIGNS)).all()
    idx = C.population_index()
    assert idx.shape == (1440,) and np.bincount(idx).tolist() == pops["size"].tolist()
    assert C.unit_signs().sum() == 2 * 3 * (192 - 32 - 16)
    assert C.file_token("V1_L2/3_Pyr") == "V1_L23_pyr"
    small = C.populations({"Pyr": 4, "SST": 2, "VIP": 1})
    assert small["stop"].iloc[-1] == 42
    with pytest.raises(BiornnError, match="sizes"):
        C.populations({"Pyr": 4})


def test_block_density_orientation_and_mask():
    D = C.block_density()
    lab = {l: i for i, l in enumerate(C.POPULATION_LABELS)}
    assert D.shape == (18, 18)
    assert D[lab["V1_L2/3_Pyr"], lab["V1_L4_SST"]] == 0.33  # [post, pre]
    assert D[lab["LM_L2/3_Pyr"], lab["LM_L4_SST"]] == 0.33  # same table in LM
    assert D[lab["LM_L4_SST"], lab["V1_L2/3_Pyr"]] == 0.3
    assert D[lab["V1_L5_VIP"], lab["LM_L5_Pyr"]] == 0.3
    cross = D.copy()
    cross[:9, :9] = 0
    cross[9:, 9:] = 0
    assert (cross > 0).sum() == 9
    assert C.block_mask().sum() == 2 * 56 + 9
    W = C.expand_blocks(D)
    assert W.shape == (1440, 1440)
    np.testing.assert_allclose(C.block_means(W), D)


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.replace("L4,SST,L2/3,Pyr,0.33", "L4,SST,L2/3,Pyr,1.5"), r"line \d+: probability '1.5'"),
    (lambda t: t.replace("L4,SST,L2/3,Pyr,0.33", "L4,Foo,L2/3,Pyr,0.33"), "unknown cell type 'Foo'"),
    (lambda t: t.replace("L4,SST,L2/3,Pyr,0.33", "L7,SST,L2/3,Pyr,0.33"), "unknown layer 'L7'"),
    (lambda t: t.replace("L4,SST,L2/3,Pyr,0.33\n", ""), "L4 SST -> L2/3 Pyr is missing"),
    (lambda t: t.replace("probability", "prob"), "missing column 'probability'"),
    (lambda t: t + "L4,SST,L2/3,Pyr,0.33\n", "repeats line"),
])
def test_within_area_validation(tmp_path, edit, match):
    path = tmp_path / "w.csv"
    path.write_text(edit(C.WITHIN_AREA_CSV.read_text()))
    with pytest.raises(BiornnError, match=match) as err:
        C.load_within_area(path)
    assert "\n" not in str(err.value)


def test_inter_area_validation(tmp_path):
    path = tmp_path / "i.csv"
    shutil.copy(C.INTER_AREA_CSV, path)
    path.write_text(path.read_text().replace("FF,V1,L2/3,Pyr,LM,L4,SST,0.3", "FF,V1,L2/3,Pyr,V1,L4,SST,0.3"))
    with pytest.raises(BiornnError, match="not an inter-area pair"):
        C.load_inter_area(path)
    path.write_text(C.INTER_AREA_CSV.read_text().replace("LM,L4,SST,0.3", "VISx,L4,SST,0.3"))
    with pytest.raises(BiornnError, match="unknown area 'VISx'"):
        C.load_inter_area(path)
    path.write_text(C.INTER_AREA_CSV.read_text().replace("LM,L4,SST,0.3", "LM,L4,SST,-0.1"))
    with pytest.raises(BiornnError, match="probability '-0.1'"):
        C.load_inter_area(path)
