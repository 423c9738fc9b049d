"""The suite's one real pipeline run: the retrain flow (Prefect, ephemeral mode) runs `dvc repro` on the tiny profile
in a temporary copy of the repo, every stage for real, then the registry's promotion step; the tests below check its
outputs, the registry, its Prefect artifact, and how DVC reruns after changes."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from tests.conftest import dvc_output_hashes, pipeline_repo, run_command
from tests.pipelines.conftest import flow_artifacts, flow_result, isolated_env

ROOT = Path(__file__).resolve().parents[1]
DATA_STAGES = ("download", "rirs", "mix", "features")
PER_ARCH = ("train", "evaluate", "export")
PER_TAGGER = ("tag-train", "tag-evaluate", "tag-export")
TAGGER_STAGES = (*PER_TAGGER, "tag-summary")  # what reads only the tagging stages' outputs

# the whole tiny pipeline runs in the first test's fixture: minutes idle, up to its own 2400-s limit on a busy machine
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2700)]


run = run_command


@pytest.fixture(scope="module")
def flow(tmp_path_factory, tiny_params) -> dict:
    """A copy of the working tree (tracked and new files, not ignored ones) with params.yaml = the tiny profile, and
    the retrain flow run on it in place, one training after the other (trainings at once go through DVC's queue,
    which needs a commit: tests/pipelines/test_retrain.py runs it on the toy pipeline)."""
    base = tmp_path_factory.mktemp("e2e")
    repo, env = pipeline_repo(base / "repo", tiny_params)
    flow_env = isolated_env(base / "prefect-home")
    done = run([sys.executable, "-m", "pipelines.retrain", "--repo", str(repo), "--report", str(base / "report.md")],
               ROOT, flow_env, timeout=2400)
    return {"repo": repo, "env": env, "result": flow_result(done), "prefect_home": base / "prefect-home",
            "report": base / "report.md"}


@pytest.fixture(scope="module")
def repo(flow) -> tuple[Path, dict]:
    return flow["repo"], flow["env"]


def stage_names(tiny_params) -> list[str]:
    archs = tiny_params["train"]["architectures"]
    baselines = [f"baseline@{b}" for b in tiny_params["evaluate"]["baselines"]]
    taggers = [f"{s}@{a}" for s in PER_TAGGER for a in tiny_params["tagging"]["architectures"]]
    return [*DATA_STAGES, *baselines, *[f"{s}@{a}" for s in PER_ARCH for a in archs], "summary", "tag-features",
            *taggers, "tag-summary", "tag-predict"]


def test_every_stage_produced_its_outputs(repo, tiny_params):
    repo, _ = repo
    data = repo / "data"
    corpus = pd.read_csv(data / "corpus" / "manifest.csv")
    assert {"speech", "noise"} == set(corpus.kind)
    mixtures = pd.read_csv(data / "mix" / "manifest.csv")
    assert set(mixtures.split) == {"train", "val", "test"}
    assert (data / "features" / "train" / "noisy.npy").is_file()
    for stage, report in [("corpus", "manifest.json"), ("mix", "manifest.json"), ("features", "output_arrays.json")]:
        assert json.loads((data / stage / "checks" / report).read_text())["success"] is True
    archs = tiny_params["train"]["architectures"]
    assert len(archs) == 7
    for arch in archs:
        assert (data / "train" / arch / "model.pt").is_file()
        trained = json.loads((data / "train" / arch / "metrics.json").read_text())
        assert trained["n_params"] > 0 and trained["gmacs_per_second"] > 0
        metrics = json.loads((data / "evaluate" / arch / "metrics.json").read_text())
        scores = {"pesq", "stoi", "estoi", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovr"}
        assert metrics["system"] == arch and scores <= set(metrics)
        for part in ("weighted", "improvement", "weighted_improvement"):
            assert scores <= set(metrics[part]) and all(np.isfinite(v) for v in metrics[part].values())
        # the tiny test split keeps every condition (evaluate.max_files spreads over them)
        assert set(metrics["by_condition"]) == {"matched", "unseen_noise", "reverberant"}
        assert "rtf" not in metrics  # a timing: in the stage's timing.json, not in a DVC metric
        assert json.loads((data / "evaluate" / arch / "timing.json").read_text())["rtf"] > 0
        assert json.loads((data / "train" / arch / "timing.json").read_text())["train_seconds"] > 0
        export = json.loads((data / "export" / arch / "export.json").read_text())
        assert export["parity_max_abs_error"] <= 1e-4 and export["torchscript_parity_max_abs_error"] <= 1e-4
    summary = json.loads((data / "summary" / "summary.json").read_text())
    assert summary["best"] in archs
    assert set(summary["systems"]) == {*tiny_params["evaluate"]["baselines"], *archs}
    assert f"by pesq (the mean over the test conditions" in (data / "summary" / "leaderboard.md").read_text()
    assert f"): {summary['best']}, " in (data / "summary" / "leaderboard.md").read_text()
    assert "## By test condition: pesq" in (data / "summary" / "leaderboard.md").read_text()
    board = json.loads((data / "summary" / "leaderboard.json").read_text())
    baselines = [b for b in tiny_params["evaluate"]["baselines"] if b != "noisy"]
    assert {s: e["kind"] for s, e in board.items()} == {"noisy": "input", **dict.fromkeys(baselines, "baseline"),
                                                         **dict.fromkeys(archs, "model")}
    for system, entry in board.items():
        for metric in ("pesq", "stoi", "estoi", "si_sdr", "dnsmos_ovr"):
            assert entry[metric]["ci_low"] <= entry[metric]["mean"] <= entry[metric]["ci_high"], (system, metric)
        assert entry["dnsmos_files"] == tiny_params["evaluate"]["dnsmos_files"]
    for plot in ("leaderboard.png", "by_snr.png", "by_category.png"):
        assert (data / "summary" / plot).read_bytes()[:4] == b"\x89PNG"
    for tagger in tiny_params["tagging"]["architectures"]:
        tagged = json.loads((data / "tagging" / "evaluate" / tagger / "metrics.json").read_text())
        assert {"lwlrap", "chance_lwlrap", "lwlrap_curated", "lwlrap_noisy", "mAP"} <= set(tagged)
        exported = json.loads((data / "tagging" / "export" / tagger / "export.json").read_text())
        assert exported["parity_max_abs_error"] <= 1e-4
    tagging = json.loads((data / "tagging" / "summary" / "summary.json").read_text())
    assert tagging["best"] in tiny_params["tagging"]["architectures"]
    for plot in ("per_class.png", "confusion.png"):
        assert (data / "tagging" / "summary" / plot).read_bytes()[:4] == b"\x89PNG"
    predicted = pd.read_csv(data / "tagging" / "predicted" / "test.csv")
    assert list(predicted.id) == sorted(mixtures[mixtures.split == "test"].id)  # every test mixture, by id
    assert set(predicted.tagger) == {tagging["best"]} and "speech" not in set(predicted.predicted_category)
    assert (data / "summary" / "by_predicted_category.png").read_bytes()[:4] == b"\x89PNG"
    assert (f"## By predicted noise category (predicted by {tagging['best']}, not labelled): pesq"
            in (data / "summary" / "leaderboard.md").read_text())
    report = (data / "summary" / "report.html").read_text()
    assert '<section class="part" id="tagging">' in report
    assert report.count("<audio") == tiny_params["evaluate"]["report_examples"] * (len(board) + 1)
    timing = json.loads((data / "summary" / "timing.json").read_text())
    assert set(timing) == set(board) and all(entry["rtf"] is not None for entry in timing.values())
    assert all(timing[arch]["train_seconds"] > 0 for arch in archs)


def test_registry_and_tracking(repo, tiny_params):
    repo, _ = repo
    from mlflow import MlflowClient

    from hushkit.io import sha256_file
    from hushkit.tracking import CHECKPOINT_TAG

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}", registry_uri=f"sqlite:///{repo / 'mlflow.db'}")
    summary = json.loads((repo / "data" / "summary" / "summary.json").read_text())
    version = client.get_model_version_by_alias("hushkit-denoiser", "challenger")
    assert version.tags["architecture"] == summary["best"]
    best_checkpoint = sha256_file(repo / "data" / "train" / summary["best"] / "model.pt")
    assert version.tags[CHECKPOINT_TAG] == best_checkpoint and float(version.tags["test_rtf"]) > 0
    best_tagger = json.loads((repo / "data" / "tagging" / "summary" / "summary.json").read_text())["best"]
    tagger = client.get_model_version_by_alias("hushkit-tagger", "challenger")
    assert tagger.tags["architecture"] == best_tagger and float(tagger.tags["test_lwlrap"]) > 0
    assert tagger.tags[CHECKPOINT_TAG] == sha256_file(repo / "data" / "tagging" / "train" / best_tagger / "model.pt")

    parents = client.search_runs([client.get_experiment_by_name("hushkit").experiment_id],
                                 filter_string="tags.stage = 'pipeline'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.data.tags["best_architecture"] == summary["best"]
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    taggers = [c for c in children if c.data.tags["stage"] == "tag-train"]
    assert sorted(c.data.tags["architecture"] for c in taggers) == sorted(tiny_params["tagging"]["architectures"])
    assert all("test_lwlrap" in c.data.metrics for c in taggers)  # tag-evaluate logged into the training run
    children = [c for c in children if c.data.tags["stage"] == "train"]
    assert sorted(c.data.tags["architecture"] for c in children) == sorted(tiny_params["train"]["architectures"])
    for child in children:
        assert {"train_loss", "val_loss", "grad_norm_mean", "n_params", "macs_per_second", "train_seconds",
                "test_pesq", "test_si_sdr", "test_rtf"} <= set(child.data.metrics)
        checkpoint = repo / "data" / "train" / child.data.tags["architecture"] / "model.pt"
        assert child.data.tags[CHECKPOINT_TAG] == sha256_file(checkpoint)  # how evaluate and export find it
        assert child.data.params["train.model"] == child.data.tags["architecture"]
        artifacts = [a.path for a in client.list_artifacts(child.info.run_id, "audio_examples")]
        assert any(path.endswith("_enhanced.wav") for path in artifacts)


def test_the_flow_ends_with_the_leaderboard_and_a_promotion_decision(flow, tiny_params):
    repo, result = flow["repo"], flow["result"]
    summary = json.loads((repo / "data" / "summary" / "summary.json").read_text())
    assert result["in_place"] and result["best"] == summary["best"]
    assert set(result["architectures"]) == set(tiny_params["train"]["architectures"])
    assert result["promotion"]["decision"] in {"promoted", "refused", "error", "not available"}
    [artifact] = flow_artifacts(flow["prefect_home"], result["flow_run_id"])
    assert artifact["key"] == "leaderboard" and artifact["type"] == "markdown"
    assert (repo / "data" / "summary" / "leaderboard.md").read_text().strip() in artifact["data"]
    assert f"**Decision: {result['promotion']['decision']}**" in artifact["data"]
    assert flow["report"].read_text() == artifact["data"]
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}", registry_uri=f"sqlite:///{repo / 'mlflow.db'}")
    challenger = client.get_model_version_by_alias("hushkit-denoiser", "challenger")
    if result["promotion"]["decision"] == "promoted":  # no champion yet in this fresh store: the first one wins
        assert client.get_model_version_by_alias("hushkit-denoiser", "champion").version == challenger.version
    # the taggers' own gate, by lwlrap: the first tagger challenger becomes the champion too
    assert result["tagger_promotion"]["decision"] == "promoted", result["tagger_promotion"]
    assert f"**Decision: {result['tagger_promotion']['decision']}**" in artifact["data"].split("of the tagger")[1]
    tagger = client.get_model_version_by_alias("hushkit-tagger", "challenger")
    assert client.get_model_version_by_alias("hushkit-tagger", "champion").version == tagger.version


def test_dag_and_nothing_reruns_when_nothing_changed(repo, tiny_params):
    repo, env = repo
    dag = run(["dvc", "dag", "--dot"], repo, env).stdout
    for edge in [("scan", "download"), ("download", "mix"), ("mix", "features"), ("features", "train@crced"), ("mix", "baseline@noisy"),
                 ("baseline@noisy", "evaluate@crced"), ("train@crced", "evaluate@crced"),
                 ("evaluate@crced", "export@crced"), ("export@crced", "summary"), ("export@segan", "summary")]:
        assert '"{}" -> "{}"'.format(*edge) in dag, edge
    again = run(["dvc", "repro"], repo, env).stdout
    # scan lists the local folders on every run (always_changed); its listing is unchanged, so nothing else runs
    assert [line for line in again.splitlines() if line.startswith("Running stage")] == ["Running stage 'scan':"]
    for stage in stage_names(tiny_params):
        assert f"Stage '{stage}' didn't change" in again


def test_experiment_on_one_architecture_reruns_only_its_stages(repo, tiny_params):
    """In a temporary copy (`--temp`, as `--queue` runs too): it logs to the repo's MLflow store, and evaluate and
    export find the copy's training run there by the checkpoint's hash."""
    repo, env = repo
    run(["git", "add", "-A"], repo, env)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"], repo, env)
    out = run(["dvc", "exp", "run", "--temp", "-n", "crced-lr", "-S", "++train.models.crced.lr=0.01"], repo,
              env).stdout
    for stage in ("train@crced", "evaluate@crced", "export@crced", "summary"):
        assert f"Running stage '{stage}'" in out
    for stage in ("train@crnn", "evaluate@segan", "baseline@noisy", "features"):
        assert f"Running stage '{stage}'" not in out
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env).stdout)
    assert "crced-lr" in json.dumps(shown)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}", registry_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("hushkit").experiment_id],
                              filter_string="tags.architecture = 'crced' and params.`train.lr` = '0.01'")
    assert len(runs) == 1
    assert {"test_pesq", "test_rtf"} <= set(runs[0].data.metrics)  # evaluate logged into the copy's training run
    versions = client.search_model_versions(f"name = 'hushkit-denoiser' and run_id = '{runs[0].info.run_id}'")
    assert len(versions) == 1  # and export registered it from there


def test_nan_mixture_stops_the_next_stage_naming_the_file(repo):
    repo, env = repo
    mixtures = pd.read_csv(repo / "data" / "mix" / "manifest.csv")
    victim = repo / "data" / "mix" / mixtures.noisy_path.iat[0]
    audio, rate = sf.read(victim, dtype="float32")
    backup = victim.read_bytes()
    sf.write(victim, np.full_like(audio, np.nan), rate, subtype="FLOAT")
    try:
        proc = run(["dvc", "repro", "--single-item", "features"], repo, env, check=False)
    finally:
        victim.write_bytes(backup)
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert mixtures.noisy_path.iat[0] in message
    assert "all_finite" in message


def test_changing_a_mix_param_reruns_mix_and_downstream_only(repo, tiny_params):
    """A new mix seed reruns mix and features (for real) and leaves every later stage stale, download and rirs
    untouched; going back to the old seed makes the workspace up to date again without training anything."""
    repo, env = repo
    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["mix"]["seed"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        out = run(["dvc", "repro", "features"], repo, env).stdout
        assert "Stage 'download' didn't change" in out and "Stage 'rirs' didn't change" in out
        assert "Running stage 'mix'" in out and "Running stage 'features'" in out
        stale = json.loads(run(["dvc", "status", "--json"], repo, env).stdout)
    finally:
        (repo / "params.yaml").write_text(original)
    # every stage after features reads data/mix or data/features directly (scan is always_changed; tag-predict
    # reads the test mixtures), except the taggers' training, scoring, export and summary, which read only the
    # tagging stages' outputs (stale once tag-features reruns)
    assert sorted(set(stale) - {"scan"}) == sorted(name for name in stage_names(tiny_params)[4:]
                                                  if not name.startswith(TAGGER_STAGES))
    back = run(["dvc", "repro"], repo, env).stdout  # mix and features run again or come back from the run cache
    assert all(f"Stage '{stage}' didn't change" in back for stage in stage_names(tiny_params)[4:])
    assert set(json.loads(run(["dvc", "status", "--json"], repo, env).stdout)) <= {"scan"}


def test_the_same_inputs_give_byte_identical_outputs(repo, tiny_params):
    """Every kind of stage run again on the same inputs (`dvc repro --force`) writes every output byte for byte as
    before, so identical results never look changed to `dvc repro`, `dvc status` or `dvc exp`. Timings, MLflow run ids
    and registry versions, new on every run, live in the stages' timing files and MLflow, not in outputs. One
    architecture's train/evaluate/export stands for all seven (one module each; every architecture's training is
    bit-identical per tests/training/test_determinism.py), which keeps this rerun a fraction of the pipeline's."""
    repo, env = repo
    lock_outs = lambda: {name: [(o["path"], o["md5"]) for o in stage.get("outs", [])]  # noqa: E731
                         for name, stage in yaml.safe_load((repo / "dvc.lock").read_text())["stages"].items()}
    before, outs_before = dvc_output_hashes(repo), lock_outs()
    every_kind = [name for name in stage_names(tiny_params) if "@" not in name or name.startswith("baseline@")
                  or name.endswith("@crced") or name.endswith("@tagcnn")]
    out = run(["dvc", "repro", "--force", "--single-item", *every_kind], repo, env).stdout
    assert sorted(line for line in out.splitlines() if line.startswith("Running stage")) == sorted(
        f"Running stage '{name}':" for name in every_kind)
    after = dvc_output_hashes(repo)
    assert set(after) == set(before)
    assert sorted(path for path in before if before[path] != after[path]) == []
    assert lock_outs() == outs_before
