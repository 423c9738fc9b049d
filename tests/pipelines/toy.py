"""A toy stand-in for the hushkit stages (seconds, no audio), for flow and deployment tests: the same stage names
as dvc.yaml (download, features, train@<arch>, evaluate@<arch>, export@<arch>, summary) over tiny text files."""
import json
import sys
from pathlib import Path

import yaml


def main(stage: str, item: str | None = None) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    if stage == "download":
        # download.fail_first: fail that many times (counted in download.attempts, a file outside the repo):
        # a transient failure for the retries to absorb.
        attempts = Path(params["download"]["attempts"])
        count = int(attempts.read_text()) if attempts.exists() else 0
        attempts.write_text(str(count + 1))
        if count < params["download"]["fail_first"]:
            sys.exit(f"download: connection reset (attempt {count + 1})")
        write("data/corpus/corpus.txt", "speech and noise\n")
    elif stage == "features":
        write("data/features/features.txt", Path("data/corpus/corpus.txt").read_text().upper())
    elif stage == "train":
        if item in params["train"].get("fail", []):
            sys.exit(f"train: {item} diverged at epoch 1: loss nan")
        write(f"data/train/{item}/model.txt", f"{item} trained on {Path('data/features/features.txt').read_text()}")
    elif stage == "evaluate":
        write(f"data/evaluate/{item}/metrics.json", json.dumps({"pesq": 1.0 + len(item) / 10}))
    elif stage == "export":
        write(f"data/export/{item}/model.onnx", Path(f"data/train/{item}/model.txt").read_text())
    elif stage == "summary":
        scores = {p.parent.name: json.loads(p.read_text())["pesq"]
                  for p in Path("data/evaluate").glob("*/metrics.json")}
        best = max(scores, key=scores.get)
        rows = "\n".join(f"| {name} | {score:.2f} |" for name, score in sorted(scores.items()))
        write("data/summary/leaderboard.md", f"| system | pesq |\n|---|---|\n{rows}\n\nBest by pesq: {best}.\n")
        write("data/summary/summary.json", json.dumps({"best": best}))


def write(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


DVC_YAML = """\
stages:
  download:
    cmd: python toy.py download
    deps: [toy.py]
    params: [download.fail_first]
    outs: [data/corpus]
  features:
    cmd: python toy.py features
    deps: [toy.py, data/corpus]
    outs: [data/features]
  train:
    foreach: ${train.architectures}
    do:
      cmd: python toy.py train ${item}
      deps: [toy.py, data/features]
      outs:
        - data/train/${item}/model.txt
  evaluate:
    foreach: ${train.architectures}
    do:
      cmd: python toy.py evaluate ${item}
      deps:
        - toy.py
        - data/train/${item}/model.txt
      outs:
        - data/evaluate/${item}/metrics.json
  export:
    foreach: ${train.architectures}
    do:
      cmd: python toy.py export ${item}
      deps:
        - toy.py
        - data/train/${item}/model.txt
      outs:
        - data/export/${item}/model.onnx
  summary:
    cmd: python toy.py summary
    deps: [toy.py, data/evaluate]
    outs: [data/summary/leaderboard.md, data/summary/summary.json]
"""

if __name__ == "__main__":
    main(*sys.argv[1:])
