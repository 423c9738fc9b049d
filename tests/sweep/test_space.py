"""The search space file: what it declares, and one line naming the file and the entry for each kind of mistake."""
from __future__ import annotations

import pytest
import yaml

from hushkit.sweep.pruning import PrunerSpec
from hushkit.sweep.space import SpaceError, check_against_params, load_space

GOOD = """
params:
  train.models.{arch}.lr: {low: 1e-4, high: 0.02, log: true}
  train.models.{arch}.epochs: {low: 1, high: 4}
  train.models.{arch}.batch_size: {low: 8, high: 32, step: 8}
  train.models.{arch}.grad_clip: {low: 1.0, high: 5.0, step: 0.5}
  train.models.{arch}.schedule.name: {choices: [cosine, constant]}
first:
  - train.models.{arch}.lr: 0.002
    train.models.{arch}.schedule.name: cosine
sampler: {startup_trials: 3, seed: 7}
pruner: {kind: median, startup_trials: 2, warmup_epochs: 1}
"""


def write(tmp_path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_a_space_declares_ranges_log_scales_steps_and_choices(tmp_path):
    space = load_space(write(tmp_path, GOOD), "crced")
    by_path = {d.path: d for d in space.dimensions}
    lr = by_path["train.models.crced.lr"]
    assert (lr.low, lr.high, lr.log, lr.integer) == (1e-4, 0.02, True, False)   # `1e-4`: a string to YAML 1.1
    assert by_path["train.models.crced.epochs"].integer
    assert by_path["train.models.crced.batch_size"].integer and by_path["train.models.crced.batch_size"].step == 8
    assert not by_path["train.models.crced.grad_clip"].integer
    assert by_path["train.models.crced.schedule.name"].choices == ("cosine", "constant")
    assert space.first == ({"train.models.crced.lr": 0.002, "train.models.crced.schedule.name": "cosine"},)
    assert (space.startup_trials, space.seed) == (3, 7)
    assert space.pruner == PrunerSpec("median", startup_trials=2, warmup_epochs=1)


def test_the_defaults_sample_randomly_ten_times_then_prune_by_the_median(tmp_path):
    space = load_space(write(tmp_path, "params:\n  train.common.lr: {low: 0.001, high: 0.01}\n"), "crnn")
    assert (space.startup_trials, space.seed, space.first) == (10, None, ())
    assert space.pruner == PrunerSpec("median", startup_trials=5, warmup_epochs=0)


def test_the_sampler_draws_every_kind_of_dimension_within_its_bounds(tmp_path):
    import optuna

    space = load_space(write(tmp_path, GOOD), "crced")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        values = space.suggest(study.ask())
        assert all(d.contains(values[d.path]) for d in space.dimensions), values
        assert values["train.models.crced.batch_size"] % 8 == 0
        assert isinstance(values["train.models.crced.epochs"], int)


def test_processes_agree_on_a_space_whatever_their_seed_or_first_trials(tmp_path):
    one = load_space(write(tmp_path, GOOD), "crced")
    other = load_space(write(tmp_path, GOOD.replace("seed: 7", "seed: 8").replace("0.002", "0.003")), "crced")
    assert one.identity() == other.identity()
    wider = load_space(write(tmp_path, GOOD.replace("high: 4", "high: 5")), "crced")
    assert wider.identity() != one.identity()
    assert yaml.safe_load(yaml.safe_dump(one.identity())) == one.identity()   # stored as JSON-like attributes


BAD = [
    ("[1, 2]", "the file: expected a mapping"),
    ("params: {}\n", "params: no key to search"),
    ("params:\n  a.b: {low: 1, high: 2}\nextra: 1\n", "the file: unknown key extra"),
    ("params:\n  train.models.{model}.lr: {low: 1, high: 2}\n", "unknown placeholder {model}"),
    ("params:\n  'train models.lr': {low: 1, high: 2}\n", "not a dotted params.yaml key"),
    ("params:\n  train.architectures: {choices: [[crced]]}\n", "the sweep sets train.architectures"),
    ("params:\n  a.b: 0.1\n", "params.a.b: expected a mapping"),
    ("params:\n  a.b: {low: 1, high: 2, scale: log}\n", "params.a.b: unknown key scale"),
    ("params:\n  a.b: {low: 1}\n", "params.a.b: give low and high"),
    ("params:\n  a.b: {low: 2, high: 1}\n", "params.a.b: low 2 is not below high 1"),
    ("params:\n  a.b: {low: x, high: 1}\n", "params.a.b.low: 'x' is not a finite number"),
    ("params:\n  a.b: {low: 1, high: .inf}\n", "params.a.b.high: inf is not a finite number"),
    ("params:\n  a.b: {low: 0, high: 1, log: true}\n", "a log scale needs low above 0"),
    ("params:\n  a.b: {low: 1, high: 9, log: yes please}\n", "params.a.b.log: 'yes please' is not true or false"),
    ("params:\n  a.b: {low: 1, high: 9, step: 0}\n", "params.a.b.step: 0 is not above 0"),
    ("params:\n  a.b: {low: 1, high: 9, step: 2, log: true}\n", "log and step do not go together"),
    ("params:\n  a.b: {choices: []}\n", "choices must be a non-empty list"),
    ("params:\n  a.b: {choices: [1, 1]}\n", "a choice is listed twice"),
    ("params:\n  a.b: {choices: [{x: 1}]}\n", "choice {'x': 1} is not a number, string"),
    ("params:\n  a.b: {choices: [1], low: 0}\n", "choices go alone"),
    ("params:\n  a: {low: 1, high: 2}\n  a.b: {low: 1, high: 2}\n", "a.b lies inside a"),
    ("params:\n  a.b: {low: 1, high: 2}\nfirst: {a.b: 1}\n", "first: expected a list"),
    ("params:\n  a.b: {low: 1, high: 2}\nfirst: [{}]\n", "first[0]: empty"),
    ("params:\n  a.b: {low: 1, high: 2}\nfirst: [{a.c: 1}]\n", "first[0].a.c: not a key under params"),
    ("params:\n  a.b: {low: 1, high: 2}\nfirst: [{a.b: 3}]\n", "first[0].a.b: 3 lies outside params.a.b"),
    ("params:\n  a.b: {low: 1, high: 2}\nfirst: [{a.b: 1.5}]\n", "first[0].a.b: 1.5 lies outside"),  # an int range
    ("params:\n  a.b: {choices: [x, y]}\nfirst: [{a.b: z}]\n", "first[0].a.b: 'z' lies outside"),
    ("params:\n  a.b: {low: 1, high: 2}\nsampler: {startup_trials: -1}\n", "sampler.startup_trials: -1 is not"),
    ("params:\n  a.b: {low: 1, high: 2}\nsampler: {seed: 1.5}\n", "sampler.seed: 1.5 is not an integer"),
    ("params:\n  a.b: {low: 1, high: 2}\nsampler: {n_startup_trials: 1}\n", "sampler: unknown key"),
    ("params:\n  a.b: {low: 1, high: 2}\npruner: {kind: hyperband}\n", "pruner.kind: 'hyperband' is not one of"),
    ("params:\n  a.b: {low: 1, high: 2}\npruner: {kind: threshold}\n", "a threshold pruner needs upper"),
    ("params:\n  a.b: {low: 1, high: 2}\npruner: {kind: median, upper: 1}\n", "only a threshold pruner has one"),
    ("params:\n  a.b: {low: 1, high: 2}\npruner: {kind: none, startup_trials: 1}\n", "only the median pruner"),
    ("params:\n  a.b: {low: 1, high: 2}\npruner: {warmup_epochs: x}\n", "pruner.warmup_epochs: 'x' is not"),
    ("params:\n  a.b: {low: 1, high: 2\n", "not valid YAML"),
]


@pytest.mark.parametrize("text, problem", BAD, ids=[problem for _, problem in BAD])
def test_a_bad_space_is_one_line_naming_the_file_and_the_entry(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(SpaceError) as caught:
        load_space(path, "crced")
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message, message


def test_a_missing_space_file_is_named(tmp_path):
    with pytest.raises(SpaceError, match=r"nowhere\.yaml: no such search space file"):
        load_space(tmp_path / "nowhere.yaml", "crced")


PARAMS = {"train": {"architectures": ["crced", "crnn"],
                    "common": {"epochs": 2, "batch_size": 4, "steps_per_epoch": 2, "lr": 0.004},
                    "models": {"crced": {"lr": 0.002}}}}


def test_a_common_key_the_architecture_overrides_is_refused(tmp_path):
    space = load_space(write(tmp_path, "params:\n  train.common.lr: {low: 0.001, high: 0.01}\n"), "crced")
    with pytest.raises(SpaceError, match=r"params\.train\.common\.lr: params\.yaml sets train\.models\.crced\.lr, "
                                         r"which overrides it for crced: search train\.models\.\{arch\}\.lr"):
        check_against_params(space, PARAMS, "crced", "params.yaml")
    check_against_params(space, PARAMS, "crnn", "params.yaml")   # crnn sets no lr of its own


def test_values_the_params_schema_refuses_are_named_before_any_trial(tmp_path):
    cases = [("train.models.{arch}.lr: {low: -1.0, high: 0.01}", r"params\.train\.models\.crced\.lr = -1\.0"),
             ("train.models.{arch}.lrr: {low: 0.001, high: 0.01}", r"params\.train\.models\.crced\.lrr = 0\.001"),
             ("train.models.{arch}.schedule.name: {choices: [cosine, sawtooth]}", r"= 'sawtooth'")]
    for line, problem in cases:
        space = load_space(write(tmp_path, f"params:\n  {line}\n"), "crced")
        with pytest.raises(SpaceError, match=problem + r": params\.yaml would not accept it"):
            check_against_params(space, PARAMS, "crced", "params.yaml")
    good = load_space(write(tmp_path, "params:\n  train.models.{arch}.epochs: {low: 1, high: 3}\n"), "crced")
    check_against_params(good, PARAMS, "crced", "params.yaml")


def test_the_example_space_fits_every_architecture_of_params_yaml():
    from pathlib import Path

    from hushkit.params import load_params

    root = Path(__file__).resolve().parents[2]
    params = load_params(root / "params.yaml")
    for arch in params["train"]["architectures"]:
        space = load_space(root / "sweeps" / "optimizer.yaml", arch)
        check_against_params(space, params, arch, "params.yaml")
        assert space.first and all(d.path.startswith(f"train.models.{arch}.") for d in space.dimensions)
