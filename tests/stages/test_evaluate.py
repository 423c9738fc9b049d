import json

import numpy as np
import pandas as pd
import pytest

from hushkit.evaluation.aggregate import system_metrics


@pytest.fixture
def per_file():
    rows = []
    for i, snr in enumerate([0, 0, 10, 10]):
        for system, bonus in (("noisy", 0.0), ("crced", 1.0)):
            rows.append({"id": f"t{i}", "system": system, "target_snr_db": snr, "noise_category": "hum",
                         "pesq": 1.5 + bonus * 0.5, "stoi": 0.8, "estoi": 0.6 + bonus * 0.1, "si_sdr": snr + bonus,
                         "dnsmos_sig": np.nan, "dnsmos_bak": np.nan, "dnsmos_ovr": 2.0 + bonus if i < 2 else np.nan,
                         "duration": 2.0})
    return pd.DataFrame(rows)


def test_metrics_give_means_and_improvement_under_the_same_keys_for_every_system(per_file):
    summary = system_metrics(per_file, "crced", None)
    assert summary["system"] == "crced" and summary["files"] == 4
    assert summary["improvement"]["pesq"] == pytest.approx(0.5)
    assert summary["improvement"]["si_sdr"] == pytest.approx(1.0)
    assert summary["improvement"]["dnsmos_ovr"] == pytest.approx(1.0)
    assert summary["si_sdr"] == pytest.approx(6.0) and summary["weighted"]["si_sdr"] == pytest.approx(6.0)
    noisy = system_metrics(per_file, "noisy", None)
    assert noisy["si_sdr"] == pytest.approx(5.0) and "improvement" not in noisy
    assert set(noisy) <= set(summary)  # dvc metrics show lines the stages up
    assert "rtf" not in summary  # a metric DVC compares must not change on a rerun: see hushkit.timing


def test_metrics_break_down_by_condition_and_weigh_the_conditions(per_file):
    per_file = per_file.assign(condition=["matched"] * 4 + ["reverberant"] * 4)  # t0, t1 vs t2, t3 per system
    per_file.loc[per_file.id.isin(["t2", "t3"]), "condition"] = "reverberant"
    per_file.loc[per_file.id.isin(["t0", "t1"]), "condition"] = "matched"
    summary = system_metrics(per_file, "crced", {"matched": 3.0, "reverberant": 1.0})
    assert summary["by_condition"]["matched"]["si_sdr"] == pytest.approx(1.0)
    assert summary["by_condition"]["reverberant"]["si_sdr"] == pytest.approx(11.0)
    assert summary["weighted"]["si_sdr"] == pytest.approx((3 * 1.0 + 11.0) / 4)
    with pytest.raises(ValueError, match="unknown condition"):
        system_metrics(per_file, "crced", {"echoic": 1.0})


def test_metrics_leave_out_unmeasured_metrics_and_are_valid_json(per_file):
    summary = system_metrics(per_file, "crced", None)
    assert "dnsmos_sig" not in summary and "dnsmos_sig" not in summary["improvement"]
    json.loads(json.dumps(summary, allow_nan=False))
