"""tag-predict: the best tagger's guess at the noise category of every test mixture, for the summary's breakdown by
predicted category (a corpus whose noise is unlabelled, such as real-small's, has no other).

The best tagger is tag-summary's (summary.json's `best`); each test mixture's noisy file gets the noise category
with the highest clip probability among the tagger's labels (not `speech`, not `uncategorized`:
hushkit.tagging.inference.predicted_categories).

    out/test.csv    id, predicted_category, probability, tagger: one row per test mixture, by id; the same
                    tagger and mixtures give the same bytes
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hushkit.io import read_table, write_table
from hushkit.stages._cli import stage_main
from hushkit.tagging.inference import load_tagger, predicted_categories


def best_tagger(summary: Path) -> str:
    """tag-summary's best tagger (summary.json's `best`); ValueError naming the file when it has none."""
    path = Path(summary) / "summary.json"
    try:
        best = json.loads(path.read_text())["best"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: no best tagger in it ({type(err).__name__}: {err}); rerun tag-summary") from None
    if not isinstance(best, str) or not best:
        raise ValueError(f"{path}: best must name a tagger, got {best!r}")
    return best


def noisy_test_files(mix: Path) -> dict[str, Path]:
    """Every test mixture's noisy file, by id (sorted)."""
    manifest = Path(mix) / "manifest.csv"
    table = read_table(manifest)
    missing = sorted({"id", "split", "noisy_path"} - set(table.columns))
    if missing:
        raise ValueError(f"{manifest}: lacks the columns {missing}; rerun the mix stage")
    test = table[table.split == "test"].sort_values("id")
    if test.empty:
        raise ValueError(f"{manifest}: no test mixtures to predict")
    return {str(row.id): Path(mix) / row.noisy_path for row in test.itertuples()}


def run(section: dict[str, Any], *, summary: Path, train: Path, mix: Path, out: Path) -> None:
    """`section`: params.yaml's `tagging` (read by nothing here: which tagger is best comes from `summary`)."""
    best = best_tagger(summary)
    tagger = load_tagger(Path(train) / best / "model.pt")
    predicted = predicted_categories(tagger, noisy_test_files(mix))
    predicted["tagger"] = best
    write_table(Path(out) / "test.csv", predicted)
    counts = predicted.predicted_category.value_counts().sort_index()
    print(f"tag-predict: {len(predicted)} test mixtures, categories predicted by {best}: "
          + ", ".join(f"{category} {count}" for category, count in counts.items()))


def main(argv: list[str] | None = None) -> None:
    stage_main("tag_predict", run, argv, section="tagging")


if __name__ == "__main__":
    main()
