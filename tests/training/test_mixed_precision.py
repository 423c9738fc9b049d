"""Mixed precision: autocast on CUDA by default (bf16, or fp16 with loss scaling), plain float32 on CPU.

The CPU path must stay exactly what it was (same weights bit for bit). The autocast path is exercised on CPU by
forcing `bf16` / `fp16`; the CUDA test at the bottom runs where a GPU is present."""
import io
import math

import pytest
import torch

from hushkit.models import available_models, build_model
from hushkit.config import TrainConfig
from hushkit.training.loop import Trainer
from hushkit.training.precision import autocast_dtype
from hushkit.training.state import load_training_state
from tests.training.test_loop import FULL_SECTION, synthetic_split, tiny_config, tiny_model

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_splits():
    return synthetic_split(0), synthetic_split(1)


@pytest.mark.parametrize("setting, expected", [
    ("auto", None), (True, None), (None, None), (False, None), ("fp32", None),
    ("bf16", torch.bfloat16), ("fp16", torch.float16),
])
def test_auto_is_float32_on_cpu_and_explicit_settings_are_honoured(setting, expected):
    assert autocast_dtype(setting, CPU) is expected


@pytest.mark.parametrize("bf16_supported, expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_on_cuda_prefers_bf16_and_falls_back_to_fp16(monkeypatch, bf16_supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_supported)
    assert autocast_dtype("auto", torch.device("cuda")) is expected
    assert autocast_dtype(False, torch.device("cuda")) is None


def test_a_bad_setting_names_the_key():
    with pytest.raises(ValueError, match="mixed_precision"):
        autocast_dtype("half", CPU)


def test_mixed_precision_defaults_to_auto_and_is_checked_by_the_schema():
    assert TrainConfig.parse({**FULL_SECTION, "mixed_precision": "auto"}, "train", segment=32000) == \
        TrainConfig.parse(FULL_SECTION, "train", segment=32000)
    with pytest.raises(ValueError, match=r"^train\.mixed_precision must be one of \['auto', 'bf16', 'fp16', 'fp32'"):
        TrainConfig.parse({**FULL_SECTION, "mixed_precision": "half"}, "train", segment=32000)


def _weights(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("arch", ["crced", "segan"])
def test_cpu_training_is_bit_identical_with_auto_and_off(tiny_splits, arch):
    """`auto` on CPU is the float32 loop: the same weights as with mixed precision off."""
    train, val = tiny_splits
    results = []
    for setting in ("auto", False):
        trainer = Trainer(tiny_model(arch), train, val,
                          tiny_config(adversarial={"start_epoch": 1}, mixed_precision=setting), CPU)
        assert not {"autocast", "grad_scaler"} & set(trainer.hooks)  # the plain float32 path
        trainer.fit()
        results.append(_weights(trainer.model))
    assert results[0] == results[1]


@pytest.mark.parametrize("arch", available_models())
def test_every_architecture_trains_under_bf16_autocast(tiny_splits, arch):
    train, val = tiny_splits
    model = tiny_model(arch) if arch in ("crced", "segan") else build_model(arch)
    trainer = Trainer(model, train, val, tiny_config(epochs=1, adversarial={"start_epoch": 1}, mixed_precision="bf16"),
                      CPU)
    assert trainer.hooks["autocast"].dtype == torch.bfloat16 and "grad_scaler" not in trainer.hooks
    history = trainer.fit()
    assert math.isfinite(history[0]["train_loss"]) and math.isfinite(history[0]["val_loss"])
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # autocast, not a cast of the model


def test_fp16_scales_the_loss_and_saves_the_scaler_with_the_resumable_state(tiny_splits, tmp_path):
    train, val = tiny_splits
    state = tmp_path / "state.pt"
    trainer = Trainer(tiny_model("segan"), train, val,
                      tiny_config(adversarial={"start_epoch": 1}, mixed_precision="fp16"), CPU, state_path=state)
    assert trainer.hooks["autocast"].dtype == torch.float16 and "grad_scaler" in trainer.hooks
    history = trainer.fit()
    assert all(math.isfinite(epoch["train_loss"]) for epoch in history)
    saved = load_training_state(state, trainer.fingerprint)  # loads as a resumed run would (weights only)
    assert saved["hooks"]["grad_scaler"]["scale"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("arch", available_models())
def test_every_architecture_trains_with_mixed_precision_on_cuda(tiny_splits, arch):
    train, val = tiny_splits
    cuda = torch.device("cuda")
    trainer = Trainer(build_model(arch), train, val, tiny_config(epochs=1, adversarial={"start_epoch": 1}), cuda)
    assert trainer.hooks["autocast"].dtype in (torch.bfloat16, torch.float16)
    history = trainer.fit()
    assert math.isfinite(history[0]["train_loss"]) and math.isfinite(history[0]["val_loss"])
