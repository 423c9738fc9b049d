from hushkit.progress import progress


def test_off_a_terminal_it_prints_files_done_at_every_tenth_and_yields_every_item(capsys):
    assert list(progress(iter(range(20)), 20, "score test set (x)")) == list(range(20))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("score test set (x): 2/20")
    assert lines[-1].startswith("score test set (x): 20/20")


def test_fewer_items_than_tenths_report_each_item_once(capsys):
    assert list(progress(["a", "b", "c"], 3, "mix")) == ["a", "b", "c"]
    assert [line.split(" (")[0] for line in capsys.readouterr().out.splitlines()] == ["mix: 1/3", "mix: 2/3",
                                                                                       "mix: 3/3"]
