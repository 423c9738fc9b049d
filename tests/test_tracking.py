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


# --- the store lock ----------------------------------------------------------------------------------------------
@pytest.fixture
def client(tmp_path, mlflow_template_store, monkeypatch):
    import shutil

    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    shutil.copy(mlflow_template_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def plant(client, generation, *, holder="host pid 1 dead", expires_in=60.0, released=False):
    """A lock generation as another process would have left it."""
    import time

    tags = {tracking.LOCK_OF_TAG: "m", "holder": holder, "expires": repr(time.time() + expires_in)}
    if released:
        tags["released_at"] = "earlier"
    client.create_registered_model(f"m.lock.{generation}", tags=tags)


def lock_generations(client):
    return {n: "released_at" in model.tags for n, model in tracking._generations(client, "m").items()}


def test_the_lock_is_taken_released_and_pruned(client):
    with tracking.store_lock(client, "m") as first:
        assert first.generation == 1 and lock_generations(client) == {1: False}
        first.ensure_held()
    assert lock_generations(client) == {1: True}
    with pytest.raises(KeyError):
        with tracking.store_lock(client, "m"):
            raise KeyError("boom")   # an error in the block still releases
    assert lock_generations(client) == {2: True}   # the older generation was pruned


def test_a_held_lock_makes_others_wait_then_fail_naming_the_holder(client):
    plant(client, 1, holder="build-7 pid 42 abc")
    with pytest.raises(tracking.LockError, match=r"'m' is busy: waited 0.5 s .*build-7 pid 42"):
        with tracking.store_lock(client, "m", wait=0.5):
            pytest.fail("entered a held lock")
    assert lock_generations(client) == {1: False}


def test_a_dead_holders_lock_is_taken_over_when_its_lease_ends(client):
    plant(client, 1, expires_in=-1.0)   # its holder was SIGKILLed a lease ago
    with tracking.store_lock(client, "m", wait=5) as lock:
        assert lock.generation == 2 and lock_generations(client) == {2: False}


def test_a_holder_whose_lease_ran_out_writes_nothing(client):
    with pytest.raises(tracking.LockError, match="lease ran out"):
        with tracking.store_lock(client, "m", lease=0.0) as lock:
            lock.ensure_held()


def test_a_number_taken_on_a_stale_view_holds_nothing(client, monkeypatch):
    """A process that read the lock long ago may create a number that was pruned since: the newer generation
    still stands, so that creation must not count as holding the lock."""
    plant(client, 3, released=True)   # 1 and 2 were pruned long ago
    real = tracking._generations
    views = iter([{1: real(client, "m").get(3)}])   # the first read is stale: "1 is the newest, released"
    monkeypatch.setattr(tracking, "_generations", lambda c, r: next(views, None) or real(c, r))
    with tracking.store_lock(client, "m", wait=5) as lock:
        assert lock.generation == 4
    assert lock_generations(client) == {4: True}   # the stale 2 was handed back, then pruned

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


# --- system metrics of a training attempt -------------------------------------------------------------------------
def _attempt_metrics(mlflow, marker) -> set[str]:
    import time

    from mlflow import MlflowClient

    with tracking.attempt_run(mlflow, marker, run_name="train-unit") as run:
        time.sleep(1.0)   # several samples at the interval below
    return set(MlflowClient().get_run(run.info.run_id).data.metrics)


def test_an_attempts_run_samples_the_machine_unless_turned_off(mlflow, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", raising=False)
    metrics = _attempt_metrics(mlflow, tmp_path / "on.run.json")
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= metrics, metrics
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    assert not any(name.startswith("system/") for name in _attempt_metrics(mlflow, tmp_path / "off.run.json"))


def test_an_attempts_run_carries_the_tags_its_starter_asks_for(mlflow, tmp_path, monkeypatch):
    """A sweep tags its trials' training runs with the study and trial through the environment."""
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    monkeypatch.setenv(tracking.RUN_TAGS_ENV, '{"sweep.study": "lr", "sweep.trial": 3}')
    with tracking.attempt_run(mlflow, tmp_path / "tagged.run.json", run_name="train-unit") as run:
        pass
    tags = MlflowClient().get_run(run.info.run_id).data.tags
    assert (tags["sweep.study"], tags["sweep.trial"]) == ("lr", "3")
    for bad in ("{oops", '["a list"]'):
        monkeypatch.setenv(tracking.RUN_TAGS_ENV, bad)
        with pytest.raises(ValueError, match=f"^{tracking.RUN_TAGS_ENV}: not a JSON object of tag names"):
            with tracking.attempt_run(mlflow, tmp_path / "bad.run.json", run_name="never"):
                pass
    experiment = mlflow.get_experiment_by_name("unit").experiment_id
    assert not MlflowClient().search_runs([experiment], filter_string="attributes.run_name = 'never'")
