import json

import numpy as np
import pandas as pd
import pytest

from hushkit.stages.evaluate import summarize


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


def test_summary_gives_means_and_improvement_and_no_timing(per_file):
    summary = summarize(per_file, "crced")
    assert summary["files"] == 4
    assert summary["improvement"]["pesq"] == pytest.approx(0.5)
    assert summary["improvement"]["si_sdr"] == pytest.approx(1.0)
    assert summary["improvement"]["dnsmos_ovr"] == pytest.approx(1.0)
    assert summary["noisy"]["si_sdr"] == pytest.approx(5.0)
    assert "rtf" not in summary["crced"]  # a metric DVC compares must not change on a rerun: see hushkit.timing


def test_summary_leaves_out_unmeasured_metrics_and_is_valid_json(per_file):
    summary = summarize(per_file, "crced")
    assert "dnsmos_sig" not in summary["crced"] and "dnsmos_sig" not in summary["improvement"]
    json.loads(json.dumps(summary, allow_nan=False))
