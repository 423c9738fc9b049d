"""tag-features: the tagging clips of every split (hushkit.tagging.clips), built once from the corpus with the mix
stage's speaker- and noise-instance-disjoint splits (its pools.csv), rendered and packed for training and scoring.

    out/labels.json                       the label set (the taggers' output order); `held_out`: the categories the
                                          denoisers never train on (learned too: `learned_held_out`); `unlabelled`:
                                          unnamed noise in the clips without a label of its own
    out/{train,val,test}/waveforms.npy    (clips, samples) float32
    out/{train,val,test}/targets.npy      (clips, labels) float32, multi-hot
    out/{train,val,test}/clips.csv        each clip's plan (subset, labels, files, SNRs, level, seed), realized SNR
    out/summary.json                      sample rate, clip length, clips per split and subset
    out/checks/                           the data checks' results

The taggers compute their log-mel features inside themselves (hushkit.models.logmel), so what is cached here
is the clips' audio: reading, trimming and mixing happen once, and training only slices arrays.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from hushkit.checks import array_stats, suites, validate
from hushkit.config import TaggingParams
from hushkit.config.data import UNCATEGORIZED
from hushkit.config.tagging import HELD_OUT_LEARN
from hushkit.io import read_table, write_json, write_npy, write_table
from hushkit.progress import progress
from hushkit.stages._cli import stage_main
from hushkit.tagging.clips import SPLITS, plan_clips, render_clips
from hushkit.tagging.categories import label_set
from hushkit.tagging.labels import SEPARATOR, SPEECH

# Empty in the clip table by design: a curated clip has no speech and no SNR.
OPTIONAL_COLUMNS = ["speech_path", "snr_db", "realized_snr_db"]


def run(section: dict[str, Any], *, mix: Path, corpus: Path, out: Path) -> None:
    """`section`: params.yaml's `tagging` (this stage reads `tagging.clips`)."""
    mix, corpus, out = Path(mix), Path(corpus), Path(out)
    params = TaggingParams.parse(section, "tagging").clips
    if not (mix / "pools.csv").is_file():
        raise FileNotFoundError(f"{mix / 'pools.csv'}: no such file; the mix stage writes it when the corpus has "
                                "speech and noise to mix (tagging needs both)")
    pools = read_table(mix / "pools.csv")
    rate = int(read_table(corpus / "manifest.csv").sample_rate.iat[0])
    learn = params.held_out == HELD_OUT_LEARN
    labels, held_out = label_set(pools, learn_held_out=learn)
    plan = plan_clips(pools, labels, params)
    unlabelled = UNCATEGORIZED in set(pools[pools.kind == "noise"].category)
    audio, snrs = render_clips(plan, corpus, rate, params, progress=progress)
    plan["realized_snr_db"] = snrs
    checks = out / "checks"
    validate(suites.tagging_clips_frame(plan, list(labels.names), SPEECH, SEPARATOR),
             suites.tagging_clips(params.max_noises, unlabelled), name="tag-features output: clip table",
             report_path=checks / "clips.json", id_column="id", allow_missing=OPTIONAL_COLUMNS)
    stats, counts = [], {}
    for split in SPLITS:
        keep = (plan.split == split).to_numpy()
        waveforms, targets = audio[keep], labels.targets(plan.labels[keep])
        stats += [array_stats(f"{split}/waveforms.npy", waveforms), array_stats(f"{split}/targets.npy", targets)]
        write_npy(out / split / "waveforms.npy", waveforms)
        write_npy(out / split / "targets.npy", targets)
        write_table(out / split / "clips.csv", plan[keep])
        counts[split] = plan[keep].subset.value_counts().reindex(["curated", "noisy"], fill_value=0).to_dict()
    validate(pd.DataFrame(stats), suites.tagging_arrays(), name="tag-features output: arrays",
             report_path=checks / "arrays.json", id_column="name")
    # The keys beyond labels and held_out are written only when they say something, so that a corpus without
    # unnamed noise and with held-out categories skipped keeps the same file (its hash names the taggers' test set).
    write_json(out / "labels.json", {"labels": list(labels.names), "held_out": held_out,
                                     **({"learned_held_out": True} if learn else {}),
                                     **({"unlabelled": [UNCATEGORIZED]} if unlabelled else {})})
    write_json(out / "summary.json", {"sample_rate": rate, "clip_samples": int(audio.shape[1]), "clips": counts})
    print(f"tag-features: {len(labels)} labels ({', '.join(labels.names)})"
          + (f", held out of the denoisers' training: {', '.join(held_out)} ({'learned' if learn else 'skipped'})"
             if held_out else "")
          + (f", {UNCATEGORIZED} noise without a label" if unlabelled else "") + "; "
          + ", ".join(f"{split}: {c['curated']} curated + {c['noisy']} noisy clips" for split, c in counts.items()))


def main(argv: list[str] | None = None) -> None:
    stage_main("tag_features", run, argv, section="tagging")


if __name__ == "__main__":
    main()
