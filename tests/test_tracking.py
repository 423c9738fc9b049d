import pytest

from hushkit import tracking

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
