"""A trial's DVC command line: its -S overrides mean exactly the values the sampler drew (read back with the Hydra
grammar `dvc exp run -S` uses), and the objective table points at the metrics the stages write."""
from __future__ import annotations

import pytest

from hushkit.errors import UserError
from hushkit.sweep import trials


def hydra_parsed(override: str):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    [parsed] = OverridesParser.create().parse_overrides([override])
    return parsed.key_or_group, parsed.value()


@pytest.mark.parametrize("value", [0.002, 1e-05, 3.0e-12, 250.0, 8, -3, True, False, None, "cosine", "onecycle",
                                   "null", "true", "1e-3", "a b", "it's", "x=y", "path/to.file", "", "back\\slash",
                                   "ends\\", "a\\'b"])
def test_an_override_reads_back_as_the_drawn_value_and_type(value):
    key, parsed = hydra_parsed(f"++train.models.crced.x={trials.hydra_value(value)}")
    assert key == "train.models.crced.x"
    assert parsed == value and type(parsed) is type(value), (value, parsed)


def test_a_trial_trains_the_swept_architecture_alone_with_its_values():
    args = trials.overrides("crced", {"train.models.crced.lr": 0.003, "train.models.crced.schedule.name": "cosine"})
    assert args == ["-S", "train.architectures=[crced]", "-S", "++train.models.crced.lr=0.003",
                    "-S", "++train.models.crced.schedule.name=cosine"]
    assert hydra_parsed(args[1]) == ("train.architectures", ["crced"])


def test_the_objectives_read_the_stages_metrics_files():
    assert trials.metric("val_loss").path("gtcrn") == "data/train/gtcrn/metrics.json"
    assert (trials.metric("val_loss").direction, trials.metric("val_loss").stage) == ("minimize", "train@{arch}")
    pesq = trials.metric("pesq")
    assert (pesq.path("crnn"), pesq.keys, pesq.direction) == ("data/evaluate/crnn/metrics.json",
                                                              ("weighted", "pesq"), "maximize")
    with pytest.raises(UserError, match="--metric 'loss': not one of val_loss, pesq"):
        trials.metric("loss")


@pytest.mark.parametrize("name", ["crced-lr", "A_1", "7"])
def test_a_study_name_that_names_experiments_is_taken(name):
    trials.check_study_name(name)
    assert trials.experiment_name(name, 3) == f"sweep-{name}-3"


@pytest.mark.parametrize("name", ["", "-x", "a b", "a/b", "a..b", "a:b", "é"])
def test_a_study_name_git_would_refuse_as_an_experiment_is_refused(name):
    with pytest.raises(UserError, match="--study .*: use letters, digits"):
        trials.check_study_name(name)
