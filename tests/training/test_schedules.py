import math
import re
from types import SimpleNamespace

import pytest
import torch

from hushkit.config import TrainConfig
from hushkit.training.schedules import SCHEDULES, make_scheduler

LR = 0.01


def lr_trajectory(**schedule) -> tuple[list[float], TrainConfig]:
    """The LR of every optimizer step of a run (epochs x steps_per_epoch steps) under the schedule these params
    (train.common.schedule) configure."""
    config = TrainConfig(epochs=6, batch_size=1, steps_per_epoch=4, lr=LR, weight_decay=0.0, segment=1,
                         schedule=schedule)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.lr)
    scheduler = make_scheduler(optimizer, config)
    lrs = []
    for _ in range(config.epochs * config.steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs, config


def test_constant_keeps_the_base_lr():
    lrs, _ = lr_trajectory(name="constant")
    assert lrs == [LR] * len(lrs)


def test_cosine_decays_from_the_base_lr_to_zero_over_the_run():
    lrs, _ = lr_trajectory(name="cosine")
    total = len(lrs)
    assert lrs == pytest.approx([LR * 0.5 * (1 + math.cos(math.pi * step / total)) for step in range(total)])
    assert lrs[0] == LR and lrs[total // 2] == pytest.approx(LR / 2)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_cosine_is_the_default():
    assert lr_trajectory()[0] == lr_trajectory(name="cosine")[0]


def test_step_multiplies_by_gamma_at_every_period_boundary():
    lrs, config = lr_trajectory(name="step", step_every_epochs=2, step_gamma=0.5)
    period = 2 * config.steps_per_epoch  # steps in 2 epochs
    assert lrs == pytest.approx([LR] * period + [LR / 2] * period + [LR / 4] * period)


def test_onecycle_peaks_at_the_base_lr_after_pct_start():
    lrs, _ = lr_trajectory(name="onecycle", onecycle_pct_start=0.25)
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert lrs[peak] == pytest.approx(LR)
    assert peak == pytest.approx(0.25 * len(lrs), abs=1)
    assert lrs[0] < LR / 10 and lrs[-1] < LR / 1000  # starts low, ends far lower
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))
    assert all(a > b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))


@pytest.mark.parametrize("schedule", ["constant", "cosine", "step"])
def test_warmup_ramps_linearly_on_top_of_the_schedule(schedule):
    warm, _ = lr_trajectory(name=schedule, warmup_steps=5)
    plain, _ = lr_trajectory(name=schedule)
    for step in range(5):
        assert warm[step] == pytest.approx(plain[step] * (step + 1) / 5)
    assert warm[5:] == plain[5:]
    if schedule == "constant":
        assert warm[:6] == pytest.approx([LR / 5, 2 * LR / 5, 3 * LR / 5, 4 * LR / 5, LR, LR])


def test_unknown_schedule_is_rejected_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"^schedule.name must be one of \['constant', 'cosine'"):
        TrainConfig(epochs=1, batch_size=1, steps_per_epoch=1, lr=LR, weight_decay=0.0, segment=1,
                    schedule={"name": "linear"})
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    # a config that skipped TrainConfig's checks
    config = SimpleNamespace(schedule=SimpleNamespace(name="linear", warmup_steps=0), epochs=1, steps_per_epoch=1)
    with pytest.raises(ValueError, match="known: " + re.escape(str(list(SCHEDULES)))):
        make_scheduler(optimizer, config)


def test_onecycle_refuses_an_extra_warmup():
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_trajectory(name="onecycle", warmup_steps=3)
