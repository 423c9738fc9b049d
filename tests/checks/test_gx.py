import json

import numpy as np
import pandas as pd
import pytest

from hushkit.checks import DataCheckError, suites, validate
from hushkit.checks.gx import _batch_def, great_expectations


@pytest.fixture(scope="module")
def gx():
    _batch_def()  # import GX and build the context once, outside the timed tests
    return great_expectations()


def _strict_json(path):
    """json.loads that rejects the NaN/Infinity tokens Python would otherwise accept."""
    def bad(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(path.read_text(), parse_constant=bad)


def _stats(**overrides):
    rows = {
        "path": ["mix/a.wav", "mix/b.wav", "mix/c.wav"],
        "readable": [True, True, True],
        "error": ["", "", ""],
        "sample_rate": [16000, 16000, 16000],
        "channels": [1, 1, 1],
        "frames": [16000, 16000, 16000],
        "duration": [1.0, 1.0, 1.0],
        "peak": [0.5, 0.4, 0.3],
        "rms_db": [-20.0, -25.0, -30.0],
        "nonfinite": [0, 0, 0],
        "all_finite": [True, True, True],
    }
    rows.update(overrides)
    return pd.DataFrame(rows)


def test_passing_frame_returns_summary_and_writes_report(gx, tmp_path):
    report = tmp_path / "checks" / "output.json"
    summary = validate(_stats(), suites.audio_files(16000, 0.5, 10.0), name="mixtures", report_path=report)
    assert summary["suite"] == "mixtures" and summary["success"] is True
    assert summary["rows"] == 3 and summary["evaluated"] >= 7
    data = _strict_json(report)
    assert data["success"] is True and data["suite_name"] == "mixtures"


def test_failure_names_files_and_expectations(gx, tmp_path):
    report = tmp_path / "checks" / "output.json"
    df = _stats(all_finite=[True, False, True], nonfinite=[0, 12, 0], rms_db=[-20.0, -25.0, -200.0])
    with pytest.raises(DataCheckError) as info:
        validate(df, suites.audio_files(16000, 0.5, 10.0), name="mixtures", label="mix output", report_path=report)
    err = info.value
    text = str(err)
    assert text.startswith("mix output check 'mixtures' failed (2 of ")
    assert str(report) in text
    assert "expect_column_values_to_be_in_set(column=all_finite, value_set=[True]): mix/b.wav (all_finite=False)" \
        in text
    assert "expect_column_values_to_be_between(column=rms_db, min_value=-60.0): mix/c.wav (rms_db=-200.0)" in text
    assert "mix/a.wav" not in text
    assert err.report_path == report
    assert [f["expectation"] for f in err.failures] == ["expect_column_values_to_be_in_set",
                                                        "expect_column_values_to_be_between"]
    assert err.failures[1]["ids"] == ["mix/c.wav"] and err.failures[1]["kwargs"] == {"column": "rms_db",
                                                                                      "min_value": -60.0}
    data = _strict_json(report)
    assert data["success"] is False
    failed = [r for r in data["results"] if not r["success"]]
    assert {r["result"]["unexpected_index_list"][0]["path"] for r in failed} == {"mix/b.wav", "mix/c.wav"}


def test_empty_frame_fails_clearly(gx, tmp_path):
    report = tmp_path / "r.json"
    with pytest.raises(DataCheckError, match="no rows to check"):
        validate(_stats().iloc[0:0], suites.audio_files(16000, 0.5, 10.0), name="mixtures", report_path=report)
    assert _strict_json(report)["success"] is False


def test_missing_id_column_fails_clearly(gx, tmp_path):
    with pytest.raises(DataCheckError, match="id column 'noisy_path' is missing"):
        validate(_stats(), suites.audio_files(16000, 0.5, 10.0), name="m", report_path=tmp_path / "r.json",
                 id_column="noisy_path")


def test_nan_in_range_checked_column_fails(gx, tmp_path):
    df = _stats(rms_db=[-20.0, np.nan, -30.0])
    between = gx.expectations.ExpectColumnValuesToBeBetween(column="rms_db", min_value=-60.0)
    # GX on its own skips NaN as "missing" and passes: the reason validate() adds a not-null check.
    batch = _batch_def().get_batch(batch_parameters={"dataframe": df})
    assert batch.validate(gx.ExpectationSuite(name="raw", expectations=[between.copy(deep=True)])).success
    with pytest.raises(DataCheckError) as info:
        validate(df, [between], name="levels", report_path=tmp_path / "r.json")
    text = str(info.value)
    assert "expect_column_values_to_not_be_null(column=rms_db) [NaN and inf count as null]: mix/b.wav (rms_db=nan)" \
        in text
    assert "mix/a.wav" not in text and "mix/c.wav" not in text


def test_inf_fails_even_with_one_sided_bound(gx, tmp_path):
    # -inf satisfies "peak <= 1.0" numerically; it must still fail.
    df = _stats(peak=[0.5, -np.inf, np.inf])
    exps = [gx.expectations.ExpectColumnValuesToBeBetween(column="peak", max_value=1.0)]
    with pytest.raises(DataCheckError) as info:
        validate(df, exps, name="peaks", report_path=tmp_path / "r.json")
    text = str(info.value)
    assert "mix/b.wav (peak=-inf)" in text and "mix/c.wav (peak=inf)" in text
    _strict_json(tmp_path / "r.json")


def test_allow_missing_skips_the_not_null_check(gx, tmp_path):
    df = _stats(rms_db=[-20.0, np.nan, -30.0])
    exps = [gx.expectations.ExpectColumnValuesToBeBetween(column="rms_db", min_value=-60.0)]
    assert validate(df, exps, name="x", report_path=tmp_path / "r.json", allow_missing=["rms_db"])["success"]


def test_many_offenders_are_truncated(gx, tmp_path):
    n = 15
    df = pd.DataFrame({"path": [f"f{i:02d}.wav" for i in range(n)], "peak": [2.0] * n})
    exps = [gx.expectations.ExpectColumnValuesToBeBetween(column="peak", max_value=1.0)]
    with pytest.raises(DataCheckError) as info:
        validate(df, exps, name="x", report_path=tmp_path / "r.json")
    text = str(info.value)
    assert "f09.wav (peak=2.0); ... and 5 more" in text and "f10.wav" not in text
    assert len(info.value.failures[0]["ids"]) == n


def test_missing_column_is_reported_not_crashed(gx, tmp_path):
    exps = [gx.expectations.ExpectColumnValuesToBeBetween(column="loudness", min_value=-60.0)]
    with pytest.raises(DataCheckError, match=r"column=loudness, min_value=-60.0\): error: .*loudness"):
        validate(_stats(), exps, name="x", report_path=tmp_path / "r.json")


def test_expectations_can_be_reused(gx, tmp_path):
    # GX binds an expectation to the suite it joins; validate() works on copies, so one list serves many calls.
    exps = suites.audio_files(16000, 0.5, 10.0)
    for i in range(2):
        assert validate(_stats(), exps, name="m", report_path=tmp_path / f"{i}.json")["success"]
    assert all(e.id is None and not (e.meta or {}) for e in exps)


def test_the_same_data_gives_a_byte_identical_report(gx, tmp_path):
    """Reports live in DVC outputs: a timestamp in them would make every rerun look like new data."""
    frame = pd.DataFrame({"path": ["a", "b"], "x": [1.0, 2.0]})
    expectations = [gx.expectations.ExpectColumnValuesToBeBetween(column="x", min_value=0, max_value=3)]
    validate(frame, expectations, name="first", report_path=tmp_path / "one.json")
    validate(frame, expectations, name="first", report_path=tmp_path / "two.json")
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()
