import numpy as np
import pandas as pd
import pytest

from hushkit.evaluation.aggregate import (SCORES, aggregate, bootstrap_interval, breakdown_tables, condition_tables,
                                         leaderboard, to_json, with_intervals)


def per_file_table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        for system, gain, seconds in (("noisy", 0.0, 0.0), ("dsp", 0.3, 0.01), ("crnn", 0.6, 0.05)):
            rows.append({"id": f"t{i:03d}", "system": system, "target_snr_db": float(5 * (i % 3)),
                         "noise_category": ["hum", "fan"][i % 2], "duration": 2.0 + i % 3, "seconds": seconds * (1 + i),
                         **{m: 1.5 + gain + rng.normal(0, 0.2) for m in SCORES}})
    table = pd.DataFrame(rows)
    table.loc[table.id > "t009", ["dnsmos_sig", "dnsmos_bak", "dnsmos_ovr"]] = np.nan  # DNSMOS on 10 files
    return table


def test_bootstrap_interval_holds_the_mean_narrows_with_more_files_and_repeats():
    rng = np.random.default_rng(1)
    small, large = rng.normal(2, 1, 20), rng.normal(2, 1, 2000)
    mean, low, high, n = bootstrap_interval(small)
    assert low < mean < high and n == 20 and mean == pytest.approx(small.mean())
    _, low_l, high_l, _ = bootstrap_interval(large)
    assert high_l - low_l < (high - low) / 4
    assert bootstrap_interval(small) == (mean, low, high, n)


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(2)
    hits = sum(low <= 0.0 <= high for low, high in
               (bootstrap_interval(rng.standard_normal(50), resamples=500, seed=s)[1:3] for s in range(200)))
    assert 0.88 <= hits / 200 <= 0.99


def test_bootstrap_interval_ignores_unmeasured_values():
    mean, low, high, n = bootstrap_interval(np.array([1.0, np.nan, 3.0]))
    assert n == 2 and mean == 2.0
    assert np.isnan(bootstrap_interval(np.array([np.nan]))[0])


def test_aggregate_by_level_and_rtf_is_total_time_over_total_audio():
    table = per_file_table()
    by_snr = aggregate(table, ["target_snr_db"])
    assert set(by_snr.target_snr_db) == {0.0, 5.0, 10.0}
    crnn = table[table.system == "crnn"]
    rtf = aggregate(table).query("system == 'crnn' and metric == 'rtf'")["mean"].item()
    assert rtf == pytest.approx(crnn.seconds.sum() / crnn.duration.sum())
    assert rtf != pytest.approx((crnn.seconds / crnn.duration).mean())


def test_leaderboard_keeps_order_gains_and_counts():
    table = per_file_table()
    board = leaderboard(table, {"noisy": "input", "dsp": "baseline", "crnn": "model"})
    assert list(board.system) == ["noisy", "dsp", "crnn"]
    means = table.groupby("system").pesq.mean()
    assert board.set_index("system").delta_pesq["crnn"] == pytest.approx(means["crnn"] - means["noisy"])
    assert (board.files == 40).all() and (board.dnsmos_files == 10).all()
    assert (board.pesq_low < board.pesq).all() and (board.pesq < board.pesq_high).all()
    json_board = to_json(board)
    assert json_board["crnn"]["kind"] == "model" and json_board["crnn"]["pesq"]["ci_low"] < json_board["crnn"]["pesq"]["mean"]
    text = with_intervals(board)
    assert text.pesq.str.match(r"^\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]$").all()


def test_without_timings_the_leaderboard_has_no_rtf_at_all():
    """The pipeline's scores carry no timings (hushkit.timing): nothing that differs per run, not even an empty
    column, reaches the leaderboard files; with them (`hushkit evaluate` on folders) the RTF is shown."""
    kinds = {"noisy": "input", "dsp": "baseline", "crnn": "model"}
    board = leaderboard(per_file_table().drop(columns=["seconds"]), kinds)
    assert all("rtf" not in entry for entry in to_json(board).values())
    assert "rtf" not in with_intervals(board).columns
    timed = leaderboard(per_file_table(), kinds)
    assert to_json(timed)["crnn"]["rtf"] > 0 and "rtf" in with_intervals(timed).columns


def test_breakdown_tables_have_a_row_per_system_and_a_column_per_value():
    kinds = {"noisy": "input", "dsp": "baseline", "crnn": "model"}
    table = per_file_table()
    table["condition"] = np.select([table.id < "t010", table.id < "t020"], ["reverberant", "unseen_noise"],
                                   "matched")
    by_category = aggregate(table, ["noise_category"])
    tables = dict(breakdown_tables(by_category, "noise_category", kinds))
    assert list(tables) == ["pesq", "stoi", "si_sdr"]
    pesq = tables["pesq"].set_index("system")
    assert list(pesq.columns) == ["kind", "fan", "hum"]  # the values sorted
    row = by_category.query("system == 'crnn' and noise_category == 'hum' and metric == 'pesq'").iloc[0]
    assert pesq.loc["crnn", "hum"] == f"{row['mean']:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]"
    # the conditions' tables keep the conditions' own order, not the alphabet's
    by_condition = aggregate(table, ["condition"])
    (_, first), *_ = condition_tables(by_condition, kinds)
    assert list(first.columns) == ["system", "kind", "matched", "unseen_noise", "reverberant"]
    assert list(dict(breakdown_tables(by_condition, "condition", kinds))["pesq"].columns) == [
        "system", "kind", "matched", "reverberant", "unseen_noise"]
