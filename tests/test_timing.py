import json

import pandas as pd
import pytest

from hushkit.timing import TIMING_FILE, read_timing, split_timing, write_timing


def test_timings_leave_the_scores_and_the_rtf_is_total_time_over_total_audio(tmp_path):
    per_file = pd.DataFrame({"id": ["a", "b"], "system": "crced", "pesq": [2.0, 3.0], "duration": [2.0, 6.0],
                             "seconds": [0.2, 0.2], "rtf": [0.1, 0.2 / 6.0]})
    scores, timing = split_timing(per_file)
    assert list(scores.columns) == ["id", "system", "pesq", "duration"]
    assert timing["rtf"] == pytest.approx(0.05)  # 0.4 s for 8 s of audio, not the mean of the ratios
    assert timing["seconds_per_file"] == {"a": 0.2, "b": 0.2}
    write_timing(tmp_path, timing)
    assert read_timing(tmp_path) == json.loads((tmp_path / TIMING_FILE).read_text()) == timing


def test_a_missing_or_damaged_timing_file_reads_as_none(tmp_path):
    assert read_timing(tmp_path) is None
    (tmp_path / TIMING_FILE).write_text("{not json")
    assert read_timing(tmp_path) is None
