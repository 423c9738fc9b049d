"""export: one architecture's ONNX and TorchScript files (export@<arch>, dynamic length), each checked against
torch on test audio, then registered from the checkpoint's training run (hushkit.tracking.training_run_id) as a version
of the MLflow model, tagged with the checkpoint's sha256 (by which the summary stage finds the best one and gives it
the `challenger` alias). export.json holds the files' hashes and parity errors; the registry version, new on every
run, is MLflow's (and printed) only."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hushkit import tracking
from hushkit.audio import read_audio
from hushkit.config import ExportParams
from hushkit.io import read_table, sha256_file, write_json
from hushkit.models import load_checkpoint
from hushkit.models.onnx_export import checkpoint_metadata, export_onnx, onnx_parity
from hushkit.models.torchscript_export import export_torchscript, torchscript_parity
from hushkit.registry import MANIFEST_TAG, REGISTERED_MODEL, provenance_tags
from hushkit.stages._cli import stage_main


def register(mlflow_params: dict[str, Any], run_id: str, checkpoint: Path, onnx_path: Path, tags: dict[str, str],
             torchscript_path: Path | None = None):
    """Log the pyfunc model (checkpoint + ONNX + TorchScript, with hushkit's code: hushkit.serving) to the training run
    as a new version of the registered model."""
    from mlflow import MlflowClient

    from hushkit import serving

    mlflow = tracking.setup(mlflow_params)
    name = mlflow_params.get("registered_model") or REGISTERED_MODEL
    with mlflow.start_run(run_id=run_id):
        info = serving.log_model({"checkpoint": str(checkpoint), "onnx": str(onnx_path),
                                  **({"torchscript": str(torchscript_path)} if torchscript_path else {})},
                                 registered_model_name=name)
    version = str(info.registered_model_version)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return {"name": name, "version": version, "model_uri": f"models:/{name}/{version}"}


def run(section: dict[str, Any], *, arch: str, model: Path, mix: Path, evaluation: Path, out: Path,
        mlflow_params: dict[str, Any]) -> None:
    """`section`: params.yaml's `export`; `mlflow_params`: its `mlflow` (the training run, the registry)."""
    model, mix, out = Path(model), Path(mix), Path(out)
    params = ExportParams.parse(section, "export")
    net, meta = load_checkpoint(model)
    if meta["model"] != arch:
        raise ValueError(f"{model}: checkpoint holds {meta['model']!r}, not {arch!r}")
    onnx_path = export_onnx(net, out / "model.onnx", opset=params.opset, metadata=checkpoint_metadata(meta))
    # Parity on real test audio of a length unlike the export example: proves the time axis is dynamic.
    test = read_table(mix / "manifest.csv").query("split == 'test'").sort_values("id")
    audio, _ = read_audio(mix / test.noisy_path.iat[0])
    error = onnx_parity(net, onnx_path, audio)
    if not error <= params.atol:
        raise ValueError(f"{onnx_path}: ONNX output differs from torch by {error:.2e} > atol {params.atol} "
                         f"on {mix / test.noisy_path.iat[0]}")
    ts_path = export_torchscript(net, out / "model.ts")  # sample_rate and model args ride inside (hushkit.json)
    ts_error = torchscript_parity(net, ts_path, audio)
    if not ts_error <= params.atol:
        raise ValueError(f"{ts_path}: TorchScript output differs from torch by {ts_error:.2e} > atol "
                         f"{params.atol} on {mix / test.noisy_path.iat[0]}")
    write_json(out / "export.json", {"onnx": onnx_path.name, "onnx_sha256": sha256_file(onnx_path),
                                     "parity_max_abs_error": error, "parity_file": test.noisy_path.iat[0],
                                     "torchscript": ts_path.name, "torchscript_sha256": sha256_file(ts_path),
                                     "torchscript_parity_max_abs_error": ts_error})

    from mlflow import MlflowClient

    run_id = tracking.training_run_id(tracking.setup(mlflow_params), mlflow_params, model, architecture=arch,
                                      train_params=meta.get("train_params") or {}, stage="export")
    # The RTF is no DVC metric (it differs on every run): the evaluate stage logged it to the training run.
    rtf = MlflowClient().get_run(run_id).data.metrics.get("test_rtf")
    scores = json.loads(Path(evaluation).read_text())
    tags = {**provenance_tags(meta, model), MANIFEST_TAG: sha256_file(mix / "manifest.csv"),
            # the condition-weighted means (evaluate.condition_weights): the score the registry compares
            **{f"test_{k}": f"{v:.4f}" for k, v in scores["weighted"].items()},
            **({"test_rtf": f"{rtf:.4f}"} if rtf is not None else {})}
    registry = register(mlflow_params, run_id, model, onnx_path, tags, torchscript_path=ts_path)
    print(f"export: {onnx_path} (max |onnx - torch| = {error:.1e}), {ts_path} (max |torchscript - torch| = "
          f"{ts_error:.1e}); registered {registry['name']} v{registry['version']}")


def main(argv: list[str] | None = None) -> None:
    stage_main("export", run, argv, sections={"mlflow_params": "mlflow"})


if __name__ == "__main__":
    main()
