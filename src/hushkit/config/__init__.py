"""The params schema: one typed section (a frozen dataclass) per params.yaml section and nested mapping, read by
one check that names the dotted key, the bad value and the known keys (hushkit.config.schema).

    from hushkit.config import MixParams
    mix = MixParams.parse(params["mix"], "mix")     # a ParamsError (a ValueError) on an unknown key or a bad value
    mix.snr_db.low

`validate_params(params)` checks the whole file (every stage does it first: hushkit.stages._cli)."""
from hushkit.config.data import (
    DownloadParams, FeaturesParams, IngestParams, LocalFolders, MinimumParams, MixParams, RirsParams,
)
from hushkit.config.pipeline import (
    EvaluateParams, ExportParams, MlflowParams, Params, PromoteParams, RetrainSchedule, SummaryParams,
    validate_params,
)
from hushkit.config.schema import ParamsError, Section
from hushkit.config.tagging import ClipParams, TaggingParams, TagEvaluateParams
from hushkit.config.train import (
    AdversarialParams, DynamicMixingParams, EarlyStoppingParams, GradNormParams, LrSchedule, SwaParams, TrainConfig,
    TrainParams,
)

__all__ = [
    "AdversarialParams", "ClipParams", "DownloadParams", "DynamicMixingParams", "EarlyStoppingParams", "EvaluateParams",
    "ExportParams", "FeaturesParams", "GradNormParams", "IngestParams", "LocalFolders", "LrSchedule", "MinimumParams",
    "MixParams", "MlflowParams", "Params", "ParamsError", "PromoteParams", "RetrainSchedule", "RirsParams", "Section",
    "SummaryParams", "SwaParams", "TagEvaluateParams", "TaggingParams", "TrainConfig", "TrainParams",
    "validate_params",
]
