"""tag-export: one tagger as an ONNX graph (tag-export@<arch>; hushkit.tagging.export: waveform in, clip
probabilities out, the label names and sample rate in its metadata), checked against torch on test clips, then
registered from the tagger's training run (hushkit.tracking.training_run_id) as a version of the registered tagger
model (tagging.registered_model), tagged as the denoisers' versions are: with the checkpoint's sha256 (by which
tag-summary finds the best one and makes it the `challenger`), the test scores (`test_lwlrap`, ...) and a hash of the
test clips (hushkit.registry.MANIFEST_TAG: `hushkit promote` compares only versions scored on the same clips).

    out/model.onnx     the graph
    out/export.json    its sha256, the parity error and the clips it was measured on; the registry version, new on
                       every run, is MLflow's (and printed) only
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from hushkit import tracking
from hushkit.config import ExportParams, TaggingParams
from hushkit.io import read_table, sha256_file, write_json
from hushkit.registry import MANIFEST_TAG, REGISTERED_TAGGER, provenance_tags
from hushkit.stages._cli import stage_main
from hushkit.tagging.data import TaggingSplit, load_tagger_for_clips, split_sha256
from hushkit.tagging.export import OUTPUT, export_tagger, register_tagger, tagger_parity

PARITY_CLIPS = 3  # a batch and a length unlike the export example's (2 x 1 s): both axes are shown to be dynamic
# tag-evaluate's scores that become the version's test_<score> tags (`hushkit promote --metric lwlrap`, ...)
SCORE_TAGS = ("lwlrap", "lwlrap_low", "lwlrap_high", "lwlrap_curated", "lwlrap_noisy", "mAP")


def score_tags(evaluation: Path) -> dict[str, str]:
    """test_<score> tags from tag-evaluate's metrics.json; ValueError naming the file when it has no lwlrap."""
    scores = json.loads(Path(evaluation).read_text())
    if not isinstance(scores.get("lwlrap"), (int, float)) or not math.isfinite(scores["lwlrap"]):
        raise ValueError(f"{evaluation}: no finite lwlrap (found {scores.get('lwlrap')!r}); rerun tag-evaluate")
    return {f"test_{key}": f"{scores[key]:.4f}" for key in SCORE_TAGS
            if isinstance(scores.get(key), (int, float)) and math.isfinite(scores[key])}


def run(section: dict[str, Any], *, arch: str, model: Path, features: Path, evaluation: Path, out: Path,
        export_params: dict[str, Any], mlflow_params: dict[str, Any]) -> None:
    """`section`: params.yaml's `tagging` (its registered_model); `export_params`: its `export` (opset, atol);
    `mlflow_params`: its `mlflow` (the training run, the registry)."""
    model, features, out = Path(model), Path(features), Path(out)
    params = ExportParams.parse(export_params, "export")
    name = TaggingParams.parse(section, "tagging").registered_model or REGISTERED_TAGGER
    tagger, meta, labels = load_tagger_for_clips(model, arch, features)
    tags = score_tags(evaluation)  # a bad evaluation fails before the slow export

    onnx_path = export_tagger(tagger, out / "model.onnx", meta=meta, opset=params.opset)
    test = TaggingSplit.load(features / "test")
    clips = read_table(features / "test" / "clips.csv").id.iloc[:PARITY_CLIPS].tolist()
    error = tagger_parity(tagger, onnx_path, np.array(test.waveforms[:PARITY_CLIPS]))
    if not error <= params.atol:
        raise ValueError(f"{onnx_path}: ONNX probabilities differ from torch's by {error:.2e} > atol {params.atol} "
                         f"on the test clips {clips}")
    write_json(out / "export.json", {"onnx": onnx_path.name, "onnx_sha256": sha256_file(onnx_path),
                                     "output": OUTPUT, "labels": labels, "parity_max_abs_error": error,
                                     "parity_clips": clips})

    mlflow = tracking.setup(mlflow_params)
    run_id = tracking.training_run_id(mlflow, mlflow_params, model, architecture=arch,
                                      train_params=meta.get("train_params") or {}, stage="tag-export")
    tags = {**provenance_tags(meta, model), "kind": "tagger", MANIFEST_TAG: split_sha256(features, "test"), **tags}
    version = register_tagger(mlflow, name, run_id, onnx_path, model, labels, tags)
    print(f"tag-export: {onnx_path} (max |onnx - torch| = {error:.1e} on {len(clips)} test clips); registered "
          f"{name} v{version} (lwlrap {tags['test_lwlrap']})")


def main(argv: list[str] | None = None) -> None:
    stage_main("tag_export", run, argv, section="tagging",
               sections={"export_params": "export", "mlflow_params": "mlflow"})


if __name__ == "__main__":
    main()
