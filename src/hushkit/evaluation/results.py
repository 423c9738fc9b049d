"""Everything an evaluation writes, the same for the pipeline's summary stage and `hushkit evaluate`: the per-file
table, the leaderboard (JSON, Markdown) with 95% intervals, breakdowns per SNR level, noise category, test condition
and, where a tagger predicted each file's noise category, per predicted category; PNG plots and the self-contained
listening report."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from hushkit.audio import read_audio
from hushkit.evaluation import aggregate, plots
from hushkit.evaluation.report import Clip, Example, ReportPart, write_report
from hushkit.io import atomic_path, write_json, write_table

NOTES = (
    "Each score is the mean over the test files with its 95% percentile-bootstrap interval "
    f"({aggregate.BOOTSTRAP['resamples']} resamples of the files) in brackets; Δ is the gain over the noisy input "
    "on the same files. PESQ is wide-band (narrow-band at 8 kHz). DNSMOS (P.835 SIG/BAK/OVRL, no reference needed) "
    "is scored on the `dnsmos_files` files, spread over the SNR levels and noise categories.",
)
RTF_NOTE = "rtf: processing time over audio time on one CPU thread."
PREDICTED = "predicted_category"  # per_file's column of a tagger's predicted noise category


def write_evaluation(out: Path, per_file: pd.DataFrame, kinds: dict[str, str], *, mix: Path, test: pd.DataFrame,
                     examples: dict[str, Path], title: str, extra: pd.DataFrame | None = None,
                     intro: str = "", board: pd.DataFrame | None = None,
                     parts: Sequence[ReportPart] = (), predicted: pd.DataFrame | None = None,
                     predicted_by: str = "") -> pd.DataFrame:
    """Write the evaluation of `per_file` (rows of every system in `kinds`: system → input | baseline | model) to
    `out`; `examples` maps a system to the folder with its enhanced `<id>.wav` files; `parts`: sections of their own
    in the report (the taggers'). Returns the leaderboard (`board`: `aggregate.leaderboard(per_file, kinds)` when
    the caller has it already; the bootstrap is not free).

    `predicted` (columns id, predicted_category: a tagger's guess at each noisy file's noise category, for files
    whose category is unknown; `predicted_by` names the tagger) adds a `predicted_category` column to per_file.csv,
    by_predicted_category.{csv,png} and a section per metric, each marked as predicted."""
    out = Path(out)
    missing = sorted(set(kinds) - set(per_file.system))
    if missing:
        raise ValueError(f"no per-file scores for {missing}")
    if predicted is not None:
        per_file = with_predicted(per_file, predicted)
    board = aggregate.leaderboard(per_file, kinds) if board is None else board
    if extra is not None:
        board = board.merge(extra, on="system", how="left")
    table = aggregate.with_intervals(board)
    notes = (f"{NOTES[0]} {RTF_NOTE}",) if "rtf" in table else NOTES
    write_table(out / "per_file.csv", per_file)
    write_json(out / "leaderboard.json", aggregate.to_json(board))
    by_snr = aggregate.aggregate(per_file, ["target_snr_db"])
    by_category = aggregate.aggregate(per_file, ["noise_category"])
    write_table(out / "by_snr.csv", by_snr)
    write_table(out / "by_category.csv", by_category)
    figures = [("Each metric per system (bars: mean; whiskers: 95% interval)", out / "leaderboard.png"),
               ("Each metric against the input SNR (shaded: 95% interval)", out / "by_snr.png"),
               ("Per noise category", out / "by_category.png")]
    plots.metric_bars(board, figures[0][1])
    plots.metric_vs_snr(by_snr, kinds, figures[1][1])
    plots.metric_by_category(by_category, kinds, figures[2][1])
    by_condition = aggregate.aggregate(per_file.dropna(subset=["condition"]), ["condition"]) \
        if "condition" in per_file and per_file.condition.notna().any() else None
    sections: list[tuple[str, pd.DataFrame]] = []
    if by_condition is not None:
        write_table(out / "by_condition.csv", by_condition)
        figures.append(("Per test condition: matched noise, noise never heard in training, reverberant speech "
                        "(whiskers: 95% interval)", out / "by_condition.png"))
        plots.metric_by_condition(by_condition, kinds, figures[-1][1])
        sections = [(f"By test condition: {metric}", part)
                    for metric, part in aggregate.condition_tables(by_condition, kinds)]
    if predicted is not None:
        by_predicted = aggregate.aggregate(per_file, [PREDICTED])
        write_table(out / "by_predicted_category.csv", by_predicted)
        marked = f"predicted by {predicted_by or 'a tagger'}, not labelled"
        figures.append((f"Per noise category the tagger predicts for each noisy file ({marked})",
                        out / "by_predicted_category.png"))
        plots.metric_by_category(by_predicted, kinds, figures[-1][1], column=PREDICTED,
                                 what="predicted noise category")
        sections += [(f"By predicted noise category ({marked}): {metric}", part)
                     for metric, part in aggregate.breakdown_tables(by_predicted, PREDICTED, kinds)]
    with atomic_path(out / "leaderboard.md") as tmp:
        tmp.write_text(f"# {title}\n\n{intro}\n\n{aggregate.to_markdown(table)}\n\n{notes[0]}\n"
                       + "".join(f"\n## {heading}\n\n{aggregate.to_markdown(part)}\n" for heading, part in sections))
    write_report(out / "report.html", title=title, intro=intro, table=table, plots=figures,
                 examples=_examples(test, kinds, mix, examples), notes=notes, sections=sections, parts=parts)
    return board


def with_predicted(per_file: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    """`per_file` with each file's `predicted_category` (from `predicted`, by id); ValueError when `predicted`
    lacks its columns, names a file twice or has no prediction for a scored file."""
    absent = sorted({"id", PREDICTED} - set(predicted.columns))
    if absent:
        raise ValueError(f"predicted categories: no column {absent} (columns: {list(predicted.columns)})")
    twice = sorted(set(predicted.id[predicted.id.duplicated()]))
    if twice:
        raise ValueError(f"predicted categories: {len(twice)} file(s) predicted twice: "
                         f"{', '.join(map(str, twice[:5]))}")
    categories = per_file.id.map(predicted.set_index("id")[PREDICTED])
    unpredicted = sorted(set(per_file.id[categories.isna()]))
    if unpredicted:
        raise ValueError(f"predicted categories: none for {len(unpredicted)} scored file(s) "
                         f"({', '.join(map(str, unpredicted[:5]))}{' ...' if len(unpredicted) > 5 else ''}); "
                         "they were predicted on other files")
    return per_file.assign(**{PREDICTED: categories.astype(str)})


def _examples(test: pd.DataFrame, kinds: dict[str, str], mix: Path, folders: dict[str, Path]) -> list[Example]:
    """For each file kept by the systems: the noisy input, each system's output, the clean reference."""
    ids = sorted(set.intersection(*[{p.stem for p in Path(f).glob("*.wav")} for f in folders.values()])
                 if folders else [])
    rows = test.set_index("id")
    result = []
    for file_id in ids:
        row = rows.loc[file_id]
        noisy, rate = read_audio(Path(mix) / row.noisy_path)
        clips = [Clip("noisy", noisy, rate)]
        clips += [Clip(system, read_audio(Path(folders[system]) / f"{file_id}.wav")[0], rate)
                  for system in kinds if system in folders]
        clips.append(Clip("clean", read_audio(Path(mix) / row.clean_path)[0], rate))
        recorded = row.get("origin") == "recorded"  # a paired corpus's recording: its SNR was measured, not set
        label = (f"recorded pair ({row.noise_category}), {row.realized_snr_db:.1f} dB SNR" if recorded else
                 f"{row.noise_category} noise at {row.target_snr_db:g} dB SNR")
        condition = row.get("condition")
        if isinstance(condition, str) and condition != "matched":
            label += f" ({condition.replace('_', ' ')} condition)"
        result.append(Example(file_id, label, clips))
    return result
