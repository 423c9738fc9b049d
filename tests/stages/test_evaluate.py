import pandas as pd
import pytest

from hushkit.stages.evaluate import breakdown, summarize


@pytest.fixture
def per_file():
    rows = []
    for i, snr in enumerate([0, 0, 10, 10]):
        for system, bonus in (("noisy", 0.0), ("crced", 1.0)):
            rows.append({"id": f"t{i}", "system": system, "target_snr_db": snr, "noise_category": "hum",
                         "pesq": 1.5 + bonus * 0.5, "stoi": 0.8, "estoi": 0.6 + bonus * 0.1, "si_sdr": snr + bonus})
    return pd.DataFrame(rows)


def test_summary_gives_means_and_improvement(per_file):
    summary = summarize(per_file, "crced")
    assert summary["files"] == 4
    assert summary["improvement"]["pesq"] == pytest.approx(0.5)
    assert summary["improvement"]["si_sdr"] == pytest.approx(1.0)
    assert summary["noisy"]["si_sdr"] == pytest.approx(5.0)


def test_breakdown_by_snr_has_one_row_per_system_and_level(per_file):
    table = breakdown(per_file, "target_snr_db")
    assert len(table) == 4
    row = table[(table.system == "crced") & (table.target_snr_db == 10)].iloc[0]
    assert row.si_sdr == pytest.approx(11.0)
