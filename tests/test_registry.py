"""The registry gate (hushkit.registry, `hushkit promote/rollback/history`) on a temporary sqlite store and on a
real `mlflow server` on 127.0.0.1. Versions are created directly with the tags the export stage sets: no model."""
import os
import shutil

import pytest
from typer.testing import CliRunner

from hushkit import registry
from hushkit.cli import app
from hushkit.io import sha256_file
from hushkit.registry import CHALLENGER, CHAMPION, RegistryError

NAME = "hushkit-denoiser"
TEST_SET = "a" * 64
OTHER_TEST_SET = "b" * 64
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture
def store(tmp_path, mlflow_template_store, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)   # ./mlruns, the local artifact root, lands here
    path = tmp_path / "mlflow.db"
    shutil.copy(mlflow_template_store, path)
    return f"sqlite:///{path}"


@pytest.fixture
def client(store):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=store, registry_uri=store)


def add_versions(client, scores, test_set=TEST_SET, alias=None, name=NAME):
    """One version per pesq score, tagged as export tags them; the last gets `alias` when given."""
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    experiment = client.get_experiment_by_name("unit") or client.get_experiment(client.create_experiment("unit"))
    made = []
    for n, pesq in enumerate(scores):
        run = client.create_run(experiment.experiment_id)
        tags = {"architecture": f"arch{n}", "git_commit": "c0ffee" * 6, registry.MANIFEST_TAG: test_set,
                "params_sha256": "d" * 64, "test_pesq": f"{pesq:.4f}", "test_stoi": "0.9000",
                "test_rtf": f"{0.1 / pesq:.4f}"}
        version = client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
                                              tags=tags)
        made.append(str(version.version))
    if alias:
        client.set_registered_model_alias(name, alias, made[-1])
    return made


def champion(client):
    return str(client.get_model_version_by_alias(NAME, CHAMPION).version)


def test_no_champion_the_best_candidate_becomes_champion(client):
    add_versions(client, [2.1, 2.4, 2.2])
    decision = registry.promote(client, NAME, user="alice")
    assert decision.promoted and decision.status == "promoted"
    assert (decision.candidate, decision.champion, decision.candidate_score) == ("2", None, 2.4)
    assert champion(client) == "2"
    tags = client.get_model_version(NAME, "2").tags
    assert tags["promoted_by"] == "alice" and tags["promoted_at"] and "no champion yet" in tags["promotion_reason"]
    [entry] = registry.history(client, NAME)
    assert entry["action"] == "promote" and entry["version"] == "2" and entry["previous"] is None


def test_better_challenger_promotes_and_records_who_when_why(client):
    add_versions(client, [2.0])
    registry.promote(client, NAME)
    add_versions(client, [2.3], alias=CHALLENGER)
    decision = registry.promote(client, NAME, user="bob", reason="weekly retrain")
    assert decision.promoted and (decision.candidate, decision.champion) == ("2", "1")
    assert decision.margin == pytest.approx(0.3)
    assert champion(client) == "2"
    tags = client.get_model_version(NAME, "2").tags
    assert tags["promoted_by"] == "bob"
    assert all(s in tags["promotion_reason"] for s in ("weekly retrain", "2.3000", "2.0000", "+0.3000"))
    assert [e["version"] for e in registry.history(client, NAME)] == ["1", "2"]


def test_worse_challenger_is_refused_with_the_numbers(client):
    add_versions(client, [2.5])
    registry.promote(client, NAME)
    add_versions(client, [2.2], alias=CHALLENGER)
    decision = registry.promote(client, NAME)
    assert not decision.promoted and decision.status == "refused"
    assert all(s in decision.message for s in ("not better", "2.2000", "2.5000", "-0.3000"))
    assert champion(client) == "1"
    assert "promoted_at" not in client.get_model_version(NAME, "2").tags
    assert len(registry.history(client, NAME)) == 1


def test_minimum_margin_is_respected(client):
    add_versions(client, [2.00])
    registry.promote(client, NAME)
    add_versions(client, [2.03], alias=CHALLENGER)
    decision = registry.promote(client, NAME, min_margin=0.05)
    assert not decision.promoted and "minimum margin" in decision.message and "+0.0300" in decision.message
    assert champion(client) == "1"
    # exactly the margin (2.03 - 2.00 is 0.0299999... in floats) promotes
    assert registry.promote(client, NAME, min_margin=0.03).promoted and champion(client) == "2"
    with pytest.raises(ValueError, match="worse model"):
        registry.promote(client, NAME, min_margin=-0.1)


def test_a_different_test_set_is_refused(client):
    add_versions(client, [2.0])
    registry.promote(client, NAME)
    add_versions(client, [3.0], test_set=OTHER_TEST_SET, alias=CHALLENGER)
    decision = registry.promote(client, NAME)
    assert not decision.promoted and decision.status == "refused"
    assert "not comparable" in decision.message and "aaaaaaaaaaaa" in decision.message
    assert "hushkit evaluate" in decision.message
    assert champion(client) == "1"


def test_lower_is_better_for_rtf_and_missing_tags_are_named(client):
    add_versions(client, [2.0])
    registry.promote(client, NAME)
    add_versions(client, [2.5], alias=CHALLENGER)   # test_rtf 0.04 < 0.05: faster
    assert registry.promote(client, NAME, metric="rtf").promoted
    with pytest.raises(RegistryError, match=r"v2 has no tag 'test_dnsmos_ovr'.*pesq"):
        registry.promote(client, NAME, metric="dnsmos_ovr")


def test_the_champion_again_is_unchanged(client):
    add_versions(client, [2.0], alias=CHALLENGER)
    assert registry.promote(client, NAME).promoted
    again = registry.promote(client, NAME)
    assert not again.promoted and again.status == "unchanged"
    assert len(registry.history(client, NAME)) == 1


def test_rollback_restores_the_previous_champion_and_is_recorded(client):
    add_versions(client, [2.0])
    registry.promote(client, NAME)
    add_versions(client, [2.2], alias=CHALLENGER)
    registry.promote(client, NAME)
    add_versions(client, [2.4], alias=CHALLENGER)
    registry.promote(client, NAME)
    assert champion(client) == "3"
    result = registry.rollback(client, NAME, user="carol", reason="clicks in production")
    assert (result.restored, result.replaced) == ("2", "3") and champion(client) == "2"
    tags = client.get_model_version(NAME, "3").tags
    assert tags["rolled_back_by"] == "carol" and "clicks in production" in tags["rollback_reason"]
    assert registry.rollback(client, NAME).restored == "1" and champion(client) == "1"
    with pytest.raises(RegistryError, match="first recorded @champion"):
        registry.rollback(client, NAME)
    entries = registry.history(client, NAME)
    assert [(e["action"], e["version"]) for e in entries] == [
        ("promote", "1"), ("promote", "2"), ("promote", "3"), ("rollback", "2"), ("rollback", "1")]
    # the next scheduled promote does not undo the rollback: v3 is still @challenger and still "better"
    again = registry.promote(client, NAME)
    assert again.status == "refused" and "rolled back" in again.message and "clicks in production" in again.message
    assert champion(client) == "1"
    client.delete_model_version_tag(NAME, "3", registry.ROLLED_BACK_TAG)   # a person lets it compete again
    assert registry.promote(client, NAME).promoted and champion(client) == "3"
    assert registry.rollback(client, NAME).restored == "1"


def test_rollback_without_history_is_a_clear_error(client):
    add_versions(client, [2.0, 2.1])
    with pytest.raises(RegistryError, match="no @champion"):
        registry.rollback(client, NAME)
    client.set_registered_model_alias(NAME, CHAMPION, "2")   # set by hand, not by promote
    with pytest.raises(RegistryError, match="no promotion history"):
        registry.rollback(client, NAME)
    with pytest.raises(RegistryError, match="no registered model 'other'"):
        registry.rollback(client, "other")


def test_challenge_with_checkpoint_moves_the_alias_to_its_version_or_says_which_stage_registers_it(client,
                                                                                                  tmp_path):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    v1, v2 = add_versions(client, [2.0, 2.1])
    client.set_model_version_tag(NAME, v1, registry.CHECKPOINT_TAG, sha256_file(checkpoint))
    said = registry.challenge_with_checkpoint(client, NAME, checkpoint, "export@crced")
    assert said == f"{NAME} v{v1} is @{CHALLENGER}"
    assert str(client.get_model_version_by_alias(NAME, CHALLENGER).version) == v1

    checkpoint.write_bytes(b"other weights")   # a checkpoint no version was exported from: the alias stays
    said = registry.challenge_with_checkpoint(client, NAME, checkpoint, "export@crced")
    assert "not moved" in said and "`dvc repro -f export@crced`" in said
    assert str(client.get_model_version_by_alias(NAME, CHALLENGER).version) == v1


def test_history_is_trimmed_to_the_tag_limit(client):
    add_versions(client, [2.0, 2.1])
    for _ in range(12):   # enough to pass 5000 characters
        registry._record(client, NAME, {"action": "promote", "version": "1", "previous": "2", "at": "now",
                                        "by": "x" * 500, "reason": ""})
    entries = registry.history(client, NAME)
    assert 1 < len(entries) < 12
    assert len(client.get_registered_model(NAME).tags[registry.HISTORY_TAG]) <= registry.HISTORY_MAX_CHARS


def test_champion_chain_pushes_promotions_and_pops_rollbacks():
    entries = [{"action": "promote", "version": "1", "previous": None},
               {"action": "promote", "version": "3", "previous": "2"},   # v2 was set outside promote
               {"action": "rollback", "version": "2", "previous": "3"},
               {"action": "promote", "version": "4", "previous": "2"}]
    assert registry.champion_chain(entries) == ["1", "2", "4"]


# --- the CLI --------------------------------------------------------------------------------------------------
runner = CliRunner()


def cli(*args, store):
    return runner.invoke(app, [*args, "--tracking-uri", store, "--params", "no-such-params.yaml"])


def test_cli_promote_refuse_rollback_and_history(client, store, tmp_path):
    add_versions(client, [2.0])
    result = cli("promote", "--user", "dana", store=store)
    assert result.exit_code == 0 and "no champion yet" in result.output and "v1" in result.output
    add_versions(client, [1.9], alias=CHALLENGER)
    result = cli("promote", store=store)
    assert result.exit_code == 1 and "refused" in result.output and "1.9000" in result.output
    add_versions(client, [2.2], alias=CHALLENGER)
    result = cli("promote", "--min-margin", "0.5", store=store)
    assert result.exit_code == 1 and "minimum margin" in result.output
    result = cli("promote", "--reason", "better PESQ", store=store)
    assert result.exit_code == 0 and "promoted" in result.output and champion(client) == "3"
    result = cli("rollback", store=store)
    assert result.exit_code == 0 and "from v3 to v1" in result.output and champion(client) == "1"
    result = cli("rollback", store=store)
    assert result.exit_code == 2 and "first recorded" in result.output
    result = cli("history", store=store)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("*") and " 1 " in line and "2.0000" in line for line in lines)
    assert "rollback" in result.output and "better PESQ" in result.output and "dana" in result.output
    assert any(line.lstrip().startswith("3 ") and "rolled back" in line for line in lines)

    # params.yaml's promote section sets the defaults
    params = tmp_path / "params.yaml"
    params.write_text("promote: {metric: pesq, min_margin: 0.5}\n")
    add_versions(client, [2.3], alias=CHALLENGER)   # v3, rolled back, would be refused as such
    result = runner.invoke(app, ["promote", "--tracking-uri", store, "--params", str(params)])
    assert result.exit_code == 1 and "minimum 0.5000" in result.output


def add_tagger_versions(client, scores, name="hushkit-tagger", alias=None):
    """Tagger versions as tag-export tags them: test_lwlrap, no PESQ."""
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    experiment = client.get_experiment_by_name("unit") or client.get_experiment(client.create_experiment("unit"))
    made = []
    for lwlrap in scores:
        run = client.create_run(experiment.experiment_id)
        tags = {"architecture": "gcnn", "kind": "tagger", registry.MANIFEST_TAG: TEST_SET,
                "test_lwlrap": f"{lwlrap:.4f}"}
        made.append(str(client.create_model_version(name, source=f"{run.info.artifact_uri}/model",
                                                    run_id=run.info.run_id, tags=tags).version))
    if alias:
        client.set_registered_model_alias(name, alias, made[-1])
    return made


def test_cli_tagger_flag_gates_the_registered_tagger_by_lwlrap(client, store, tmp_path):
    add_versions(client, [2.0])   # the denoisers' registry is left alone
    add_tagger_versions(client, [0.90])
    result = cli("promote", "--tagger", store=store)
    assert result.exit_code == 0 and result.output.startswith("hushkit-tagger: no champion yet"), result.output
    assert "lwlrap 0.9000" in result.output
    add_tagger_versions(client, [0.85], alias=CHALLENGER)
    result = cli("promote", "--tagger", store=store)
    assert result.exit_code == 1 and "refused" in result.output and "0.8500" in result.output
    assert str(client.get_model_version_by_alias("hushkit-tagger", CHAMPION).version) == "1"
    assert CHAMPION not in client.get_registered_model(NAME).aliases
    result = cli("history", "--tagger", store=store)
    assert result.exit_code == 0 and "lwlrap" in result.output and "0.9000" in result.output
    # params tagging.registered_model names the tagger's registered model
    params = tmp_path / "params.yaml"
    params.write_text("tagging: {registered_model: team-tagger}\n")
    add_tagger_versions(client, [0.7], name="team-tagger")
    result = runner.invoke(app, ["promote", "--tagger", "--tracking-uri", store, "--params", str(params)])
    assert result.exit_code == 0 and result.output.startswith("team-tagger: no champion yet"), result.output


def test_cli_without_a_store_or_model_exits_2(client, store, tmp_path):
    result = runner.invoke(app, ["promote", "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}"])
    assert result.exit_code == 2 and "no MLflow store" in result.output
    assert not (tmp_path / "none.db").exists()
    result = cli("promote", store=store)
    assert result.exit_code == 2 and "no registered model" in result.output


def test_cli_a_busy_registry_is_one_line_and_exit_2(client, store, monkeypatch):
    import time

    from hushkit import tracking

    add_versions(client, [2.0])
    client.create_registered_model(f"{NAME}.lock.1", tags={tracking.LOCK_OF_TAG: NAME, "holder": "ci-3 pid 9",
                                                            "expires": repr(time.time() + 60)})
    monkeypatch.setattr(tracking, "LOCK_WAIT_SECONDS", 0.3)
    result = cli("promote", store=store)
    assert result.exit_code == 2 and "is busy" in result.output and "ci-3 pid 9" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert CHAMPION not in client.get_registered_model(NAME).aliases


# --- against an MLflow tracking server on loopback ----------------------------------------------------------------
def test_promote_and_rollback_against_a_tracking_server(mlflow_server, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    remote = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    add_versions(remote, [2.0, 2.4, 2.1], alias=CHALLENGER)   # every request costs: create all, move the alias

    def challenge(version):
        remote.set_registered_model_alias(NAME, CHALLENGER, version)
        return registry.promote(remote, NAME, user="erin")

    assert challenge("1").promoted and champion(remote) == "1"
    assert challenge("2").promoted and champion(remote) == "2"
    worse = challenge("3")
    assert worse.status == "refused" and "2.1000" in worse.message and champion(remote) == "2"
    assert registry.rollback(remote, NAME).restored == "1" and champion(remote) == "1"
    assert [e["action"] for e in registry.history(remote, NAME)] == ["promote", "promote", "rollback"]
    # the CLI against the server's URI: v3 (2.1) beats the restored v1 (2.0)
    result = runner.invoke(app, ["promote", "--tracking-uri", mlflow_server, "--params", "no-such-params.yaml"])
    assert result.exit_code == 0 and "promoted" in result.output and champion(remote) == "3", result.output
