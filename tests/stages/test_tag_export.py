"""tag-export@<tagger>: every tagger's ONNX graph gives torch's clip probabilities and names its labels and sample rate;
it becomes a version of hushkit-tagger, logged to the tagger's training run with the tags `hushkit promote` reads, and
the registry's promotion rules gate it on lwlrap exactly as they gate the denoisers on PESQ."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from hushkit import tracking
from hushkit.io import sha256_file, write_json, write_table
from hushkit.models import available_models, build_model, load_checkpoint, save_checkpoint
from hushkit.registry import CHALLENGER, CHAMPION, MANIFEST_TAG, REGISTERED_TAGGER, checkpoint_version
from hushkit.stages import tag_export
from hushkit.tagging.data import split_sha256
from hushkit.tagging.export import tagger_parity

pytestmark = pytest.mark.usefixtures("one_thread")

RATE = 16000
LABELS = ["hum", "white", "speech"]
TAGGERS = available_models("tagger")
LWLRAP = dict(zip(TAGGERS, (0.61 + 0.1 * i for i in range(len(TAGGERS)))))  # a different score per tagger
EXPORT = {"opset": 17, "atol": 1e-4}
MLFLOW = {"experiment": "hushkit"}


def write_features(root: Path) -> Path:
    """A tag-features-like folder: labels.json and a test split of four 1.5-s clips."""
    rng = np.random.default_rng(0)
    (root / "test").mkdir(parents=True)
    np.save(root / "test" / "waveforms.npy", (0.05 * rng.standard_normal((4, int(1.5 * RATE)))).astype(np.float32))
    np.save(root / "test" / "targets.npy", np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 1, 1]], np.float32))
    write_table(root / "test" / "clips.csv", pd.DataFrame({
        "id": [f"test{i:04d}" for i in range(4)], "subset": ["curated", "curated", "noisy", "noisy"],
        "labels": ["hum", "white", "hum;speech", "white;speech"]}))
    write_json(root / "labels.json", {"labels": LABELS, "held_out": []})
    return root


def trained_tagger(arch: str, path: Path, waveforms: np.ndarray) -> Path:
    """A checkpoint as tag-train leaves it: seeded weights, input statistics learnt from the clips."""
    torch.manual_seed(0)
    model = build_model(arch, labels=LABELS, sample_rate=RATE)
    model.prepare(torch.from_numpy(np.array(waveforms)))
    return save_checkpoint(path, model.eval(), train_params={"model": arch})


@pytest.fixture(scope="module")
def exported(tmp_path_factory, mlflow_template_store, tiny_params):
    """Every tagger trained (a run tagged with its checkpoint, as tag-train leaves it), scored and exported into one
    sqlite store."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("tag-export")
    shutil.copy(mlflow_template_store, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    features = write_features(root / "features")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.delenv(tracking.PARENT_ENV, raising=False)
        patch.chdir(root)  # a local store keeps its artifacts in ./mlruns
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = tracking.setup(MLFLOW).get_experiment_by_name("hushkit").experiment_id
        runs = {}
        for arch in TAGGERS:
            checkpoint = trained_tagger(arch, root / "train" / arch / "model.pt",
                                        np.load(features / "test" / "waveforms.npy"))
            runs[arch] = client.create_run(experiment, run_name=f"tag-train-{arch}", tags={
                tracking.CHECKPOINT_TAG: sha256_file(checkpoint), "stage": "tag-train"}).info.run_id
            write_json(root / "evaluate" / arch / "metrics.json",
                       {"lwlrap": LWLRAP[arch], "lwlrap_low": LWLRAP[arch] - 0.1, "lwlrap_high": LWLRAP[arch] + 0.1,
                        "lwlrap_curated": 0.5, "lwlrap_noisy": 0.4, "mAP": 0.3, "chance_lwlrap": 0.2, "clips": 4})
            tag_export.run(tiny_params["tagging"], arch=arch, model=checkpoint, features=features,
                           evaluation=root / "evaluate" / arch / "metrics.json", out=root / "export" / arch,
                           export_params=EXPORT, mlflow_params=MLFLOW)
        yield {"root": root, "uri": uri, "client": client, "runs": runs, "features": features,
               "section": tiny_params["tagging"]}


def version_of(exported, arch: str):
    client = exported["client"]
    return client.get_model_version(REGISTERED_TAGGER, checkpoint_version(
        client, REGISTERED_TAGGER, exported["root"] / "train" / arch / "model.pt"))


@pytest.mark.parametrize("arch", TAGGERS)
def test_the_graph_gives_torchs_probabilities_and_names_its_labels(arch, exported):
    out = exported["root"] / "export" / arch
    graph = onnx.load(str(out / "model.onnx"))
    metadata = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(metadata["labels"]) == LABELS and metadata["sample_rate"] == str(RATE)
    assert metadata["output"] == "probabilities" and metadata["kind"] == "tagger" and metadata["model"] == arch
    assert [i.name for i in graph.graph.input] == ["waveform"] and [o.name for o in graph.graph.output] == [
        "probabilities"]
    record = json.loads((out / "export.json").read_text())
    assert record["onnx_sha256"] == sha256_file(out / "model.onnx") and record["labels"] == LABELS
    assert record["parity_clips"] == ["test0000", "test0001", "test0002"]
    assert 0 <= record["parity_max_abs_error"] <= EXPORT["atol"]
    # another batch size and length than the export's and the stage's check: both axes are dynamic
    tagger, _ = load_checkpoint(exported["root"] / "train" / arch / "model.pt", kind="tagger")
    audio = 0.1 * np.random.default_rng(1).standard_normal((1, int(0.7 * RATE))).astype(np.float32)
    assert tagger_parity(tagger, out / "model.onnx", audio) <= EXPORT["atol"]
    assert not tagger.training  # the check leaves the tagger in eval mode


def test_each_tagger_is_a_version_of_its_training_run_with_the_tags_promote_reads(exported):
    import mlflow

    client = exported["client"]
    versions = client.search_model_versions(f"name = '{REGISTERED_TAGGER}'")
    assert len(versions) == len(TAGGERS)
    for arch in TAGGERS:
        version = version_of(exported, arch)
        assert version.run_id == exported["runs"][arch]
        tags = version.tags
        assert tags["architecture"] == arch and tags["kind"] == "tagger"
        assert float(tags["test_lwlrap"]) == pytest.approx(LWLRAP[arch]) and tags["test_mAP"] == "0.3000"
        assert tags[MANIFEST_TAG] == split_sha256(exported["features"], "test")
        assert tags[tracking.CHECKPOINT_TAG] == sha256_file(exported["root"] / "train" / arch / "model.pt")

    # the version's files: the ONNX model (a pyfunc that runs in onnxruntime) and the checkpoint beside it
    arch = TAGGERS[0]
    uri = f"models:/{REGISTERED_TAGGER}/{version_of(exported, arch).version}"
    files = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(exported["root"] / "download")))
    assert (files / "model.onnx").is_file() and (files / "MLmodel").is_file()
    checkpoint = exported["root"] / "train" / arch / "model.pt"
    assert sha256_file(files / "extra_files" / "model.pt") == sha256_file(checkpoint)
    audio = np.load(exported["features"] / "test" / "waveforms.npy")[:2]
    served = mlflow.pyfunc.load_model(uri).predict({"waveform": audio})["probabilities"]
    tagger, _ = load_checkpoint(files / "extra_files" / "model.pt", kind="tagger")
    with torch.no_grad():
        expected = torch.sigmoid(tagger(torch.from_numpy(audio))).numpy()
    np.testing.assert_allclose(served, expected, atol=EXPORT["atol"])


def test_promote_gates_the_taggers_on_lwlrap_with_the_registrys_rules(exported, tmp_path):
    from hushkit.cli import app

    client, uri = exported["client"], exported["uri"]
    ranked = sorted(TAGGERS, key=LWLRAP.get)  # worst first
    runner = CliRunner()

    def promote(arch: str):
        client.set_registered_model_alias(REGISTERED_TAGGER, CHALLENGER, version_of(exported, arch).version)
        return runner.invoke(app, ["promote", "--model", REGISTERED_TAGGER, "--metric", "lwlrap", "--tracking-uri",
                                   uri, "--params", str(tmp_path / "no-params.yaml")])

    def champion() -> str:
        return client.get_model_version_by_alias(REGISTERED_TAGGER, CHAMPION).version

    result = promote(ranked[0])
    assert result.exit_code == 0 and "no champion yet" in result.output
    assert champion() == version_of(exported, ranked[0]).version
    result = promote(ranked[-1])
    assert result.exit_code == 0 and "promoted" in result.output and "lwlrap" in result.output
    assert champion() == version_of(exported, ranked[-1]).version
    result = promote(ranked[0])  # worse than the champion: refused, the champion stays
    assert result.exit_code == 1 and "refused: not better" in result.output, result.output
    assert champion() == version_of(exported, ranked[-1]).version


def test_a_bad_evaluation_or_another_taggers_checkpoint_is_refused_before_exporting(exported, tmp_path):
    root = exported["root"]
    kwargs = dict(features=exported["features"], out=tmp_path / "out", export_params=EXPORT, mlflow_params=MLFLOW)
    empty = tmp_path / "metrics.json"
    empty.write_text(json.dumps({"mAP": 0.3}))
    with pytest.raises(ValueError, match=r"metrics.json: no finite lwlrap"):
        tag_export.run(exported["section"], arch=TAGGERS[0], model=root / "train" / TAGGERS[0] / "model.pt",
                       evaluation=empty, **kwargs)
    with pytest.raises(ValueError, match=f"holds '{TAGGERS[1]}', not '{TAGGERS[0]}'"):
        tag_export.run(exported["section"], arch=TAGGERS[0], model=root / "train" / TAGGERS[1] / "model.pt",
                       evaluation=root / "evaluate" / TAGGERS[0] / "metrics.json", **kwargs)
    assert not (tmp_path / "out").exists()
