"""The sections after training (`evaluate`, `export`, `summary`), the ones only the Prefect flows and the registry
commands read (`schedule`, `promote`), the tracking store (`mlflow`), and `Params`, the whole file."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from hushkit.config.data import DownloadParams, FeaturesParams, MixParams, RirsParams
from hushkit.config.schema import Section, at_least, param
from hushkit.config.tagging import TaggingParams
from hushkit.config.train import TrainParams


@dataclass(frozen=True)
class EvaluateParams(Section):
    """`evaluate`: what the evaluate and baseline stages score, and how systems are ranked."""

    max_files: int | None = param(None, rule=at_least(0, note="null or 0: the whole test split"))
    dnsmos_files: int | None = param(None, rule=at_least(0, note="null: all"))  # DNSMOS on this many files
    report_examples: int = param(0, rule=at_least(0))  # test files in the listening report
    baselines: list[str] = param(factory=list)  # reference systems scored beside the models (baseline@<name>)
    condition_weights: dict[str, float] | None = None  # each test condition's weight in the ranking score


@dataclass(frozen=True)
class ExportParams(Section):
    """`export`: the ONNX opset, and how far ONNX and TorchScript outputs may be from torch's."""

    opset: int = param(rule=at_least(7))
    atol: float = param(rule=at_least(0))


@dataclass(frozen=True)
class SummaryParams(Section):
    rank_by: str = "pesq"  # the metric that names the best architecture (the registry's challenger)


@dataclass(frozen=True)
class RetrainSchedule(Section):
    """`schedule`: the retrain flow's Prefect deployments (pipelines/deploy.py)."""

    cron: str = "0 3 * * 1"  # retrain-gpu: Mondays 03:00
    timezone: str = "UTC"
    work_pool_gpu: str = "hushkit-gpu"  # process work pool of the GPU hosts (scheduled runs)
    work_pool_cpu: str = "hushkit-cpu"  # process work pool of CPU hosts (on demand)
    gpu_concurrent_training: int = param(1, rule=at_least(1))  # architectures trained at once on a GPU host


@dataclass(frozen=True)
class PromoteParams(Section):
    """`promote`: the registry gate from @challenger to @champion (`hushkit promote`)."""

    metric: str = "pesq"  # the test_<metric> tag compared (rtf: lower is better)
    min_margin: float = 0.0  # smallest gain over the champion that promotes


@dataclass(frozen=True)
class MlflowParams(Section):
    """`mlflow`: where runs and models are tracked (MLFLOW_TRACKING_URI overrides the store)."""

    tracking_uri: str | None = None  # null: hushkit.tracking's default store
    experiment: str = "hushkit"
    registered_model: str | None = None  # null: hushkit.registry.REGISTERED_MODEL


@dataclass(frozen=True)
class Params(Section):
    """params.yaml: one section per stage (each optional here: a stage needs its own), and the flows' sections."""

    download: DownloadParams | None = None
    rirs: RirsParams | None = None
    mix: MixParams | None = None
    features: FeaturesParams | None = None
    train: TrainParams | None = None
    evaluate: EvaluateParams | None = None
    export: ExportParams | None = None
    summary: SummaryParams | None = None
    tagging: TaggingParams | None = None
    schedule: RetrainSchedule | None = None
    promote: PromoteParams | None = None
    mlflow: MlflowParams | None = None


def validate_params(params: Mapping[str, Any]) -> Params:
    """Every section of a params mapping checked (a ParamsError names the dotted key, the value and the known
    keys)."""
    return Params.parse(params)
