import pytest

from hushkit import tracking
from hushkit.io import sha256_file

PARAMS = {"download": {"seed": 1}, "mix": {}, "features": {}, "train": {"architectures": ["crced"]},
          "mlflow": {"experiment": "unit"}, "evaluate": {"max_files": None}}


@pytest.fixture(autouse=True)
def fixed_code(monkeypatch):
    """The key includes uncommitted code changes; pin them so edits elsewhere during the test cannot move it."""
    monkeypatch.setattr(tracking, "_git", lambda *args: "abc" if args[0] == "rev-parse" else "")


@pytest.fixture
def mlflow(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    return tracking.setup(PARAMS["mlflow"])


def test_key_follows_code_and_pipeline_params_only(monkeypatch):
    key = tracking.pipeline_key(PARAMS)
    assert key == tracking.pipeline_key({**PARAMS, "evaluate": {"max_files": 3}})  # evaluation does not train
    assert key != tracking.pipeline_key({**PARAMS, "train": {"architectures": ["crced", "segan"]}})
    monkeypatch.setattr(tracking, "_git", lambda *args: "abc" if args[0] == "rev-parse" else "edited")
    assert key != tracking.pipeline_key(PARAMS)


def test_stages_of_one_pipeline_share_one_parent(mlflow):
    first = tracking.parent_run_id(mlflow, PARAMS)
    assert tracking.parent_run_id(mlflow, PARAMS) == first
    other = tracking.parent_run_id(mlflow, {**PARAMS, "download": {"seed": 2}})
    assert other != first
    with mlflow.start_run(run_name="child", parent_run_id=first):
        pass
    # a child is never mistaken for the parent
    assert tracking.parent_run_id(mlflow, PARAMS) == first


def test_orchestrator_can_name_the_parent(mlflow, monkeypatch):
    monkeypatch.setenv(tracking.PARENT_ENV, "abc123")
    assert tracking.parent_run_id(mlflow, PARAMS) == "abc123"


def test_flatten_dots_nested_keys():
    assert tracking.flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}, "x.") == {"x.a.b": 1, "x.a.c.d": 2, "x.e": 3}


def test_relative_sqlite_store_is_the_repos_also_in_an_experiment_copy(monkeypatch):
    from hushkit.tracking import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    section = {"tracking_uri": "sqlite:///mlflow.db"}
    assert tracking_uri(section, cwd="/work/repo") == "sqlite:////work/repo/mlflow.db"
    assert tracking_uri(section, cwd="/work/repo/.dvc/tmp/exps/tmpab12cd") == "sqlite:////work/repo/mlflow.db"
    assert tracking_uri({"tracking_uri": "sqlite:////abs/m.db"}, cwd="/x") == "sqlite:////abs/m.db"
    assert tracking_uri({"tracking_uri": "http://127.0.0.1:5000"}, cwd="/x") == "http://127.0.0.1:5000"


def test_a_checkpoint_finds_the_newest_run_that_trained_it(mlflow, tmp_path, capsys):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    sha = sha256_file(checkpoint)
    for name in ("older", "newer"):  # the same weights trained twice (training is deterministic)
        with mlflow.start_run(run_name=name) as run:
            mlflow.set_tag(tracking.CHECKPOINT_TAG, sha)
        newest = run.info.run_id
    with mlflow.start_run(run_name="other weights"):
        mlflow.set_tag(tracking.CHECKPOINT_TAG, "0" * 64)
    found = tracking.training_run_id(mlflow, PARAMS["mlflow"], checkpoint, architecture="crced",
                                     train_params={}, stage="evaluate")
    assert found == newest and capsys.readouterr().err == ""


def test_a_checkpoint_trained_elsewhere_gets_a_run_tagged_with_it(mlflow, tmp_path, capsys):
    from mlflow import MlflowClient

    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights from another store")
    made = tracking.training_run_id(mlflow, PARAMS["mlflow"], checkpoint, architecture="crced",
                                    train_params={"lr": 0.01, "loss": {"si_sdr": 1.0}}, stage="evaluate")
    err = capsys.readouterr().err
    assert err.startswith(f"evaluate: no run in the MLflow store sqlite:///{tmp_path / 'mlflow.db'} trained ")
    assert f"logging to a new run {made} tagged with it" in err
    run = MlflowClient().get_run(made)
    assert run.data.tags[tracking.TRAINED_ELSEWHERE_TAG] == "true" and run.data.tags["architecture"] == "crced"
    assert run.data.params == {"train.lr": "0.01", "train.loss.si_sdr": "1.0"}
    # the export stage, next, logs to that same run
    assert tracking.training_run_id(mlflow, PARAMS["mlflow"], checkpoint, architecture="crced", train_params={},
                                    stage="export") == made
