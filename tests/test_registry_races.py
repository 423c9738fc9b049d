"""Concurrent `hushkit promote` / `hushkit rollback` processes, on a sqlite store and on a tracking server: whatever
the interleaving, the registry must end as if the commands had run one after the other in some order.

Each scenario starts real `hushkit` processes that load everything, wait at a barrier file, then run their command
at the same moment. The checker replays the history they left, entry by entry, through a serial model of the rules
(`Rules`): each recorded move must be the one the rules make at that point, each process's report must match its
move, each command that moved nothing must have found some point of that history where the rules say so too, and
the aliases and version tags must be the state the history ends in."""
from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hushkit import registry
from hushkit.registry import CHALLENGER, CHAMPION, ROLLED_BACK_TAG
from tests.test_registry import add_versions

SCORES = [2.0, 2.1, 2.2, 2.3, 2.4]          # v1..v5 (pesq)
SETUP_CHAIN = ["1", "2", "3"]               # promoted one after the other before the race
CONTENDER = "5"                             # @challenger during the race
TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}

# The command runs only when the barrier appears: everything it needs is imported before, as a warm start would.
WORKER = """
import sys, time
from pathlib import Path
import mlflow.exceptions, mlflow.tracking
import hushkit.registry
from hushkit.cli import app
Path(sys.argv[1]).touch()
while not Path(sys.argv[2]).exists():
    time.sleep(0.002)
app(sys.argv[3:], prog_name="hushkit")
"""


@dataclass
class Rules:
    """promote/rollback as hushkit.registry decides them, run one at a time (the registry's outcome under a serial
    order): outcomes are tuples that `outcome()` also reads from a process's report."""

    champion: str
    chain: list[str]
    scores: dict[str, float]
    challenger: str
    rolled_back: set[str] = field(default_factory=set)

    def promote(self) -> tuple:
        candidate, champion = self.challenger, self.champion
        if candidate == champion:
            return ("unchanged", candidate)
        if candidate in self.rolled_back:
            return ("refused: rolled back", candidate)
        if self.scores[candidate] <= self.scores[champion]:
            return ("refused: not better", candidate, champion)
        self.chain.append(candidate)
        self.champion = candidate
        return ("promoted", candidate, champion)

    def rollback(self) -> tuple:
        if len(self.chain) < 2:
            return ("first", self.champion)
        replaced = self.chain.pop()
        self.rolled_back.add(replaced)
        self.champion = self.chain[-1]
        return ("rolled back", self.champion, replaced)

    def run(self, command: str) -> tuple:
        return getattr(self, command)()


MOVES = {"promoted": "promote", "rolled back": "rollback"}   # outcomes that write a history entry: its action


def outcome(command: str, returncode: int, output: str) -> tuple:
    """A process's report as a Rules outcome; fails the test on anything else (a busy lock, a traceback...)."""
    def number(pattern: str) -> str:
        found = re.search(pattern, output)
        assert found, f"{command}: no {pattern!r} in:\n{output}"
        return found.group(1)

    if command == "promote":
        candidate = number(r"v(\d+) \(@challenger\)")
        if returncode == 0 and "already is @champion" in output:
            return ("unchanged", candidate)
        if returncode == 0 and "promoted to @champion" in output:
            return ("promoted", candidate, number(r"vs champion v(\d+)"))
        if returncode == 1 and "was rolled back" in output:
            return ("refused: rolled back", candidate)
        if returncode == 1 and "not better" in output:
            return ("refused: not better", candidate, number(r"vs champion v(\d+)"))
    if command == "rollback":
        if returncode == 0 and "rolled back @champion" in output:
            replaced, restored = re.search(r"from v(\d+) to v(\d+)", output).groups()
            return ("rolled back", restored, replaced)
        if returncode == 2 and "first recorded @champion" in output:
            return ("first", number(r"v(\d+) is the first recorded"))
    pytest.fail(f"unexpected report from `hushkit {command}` (exit {returncode}):\n{output}")


def check_serial(start: Rules, reports: dict[str, tuple[str, tuple]], entries: list[dict], client, name: str) -> None:
    """The history (`entries`, this race's part) is a serial order of the commands (`reports`: id → command,
    outcome), and the registry's aliases and tags are the state it ends in."""
    rules, states = copy.deepcopy(start), [copy.deepcopy(start)]
    recorded = [entry["by"] for entry in entries]
    moved = sorted(op for op, (_, result) in reports.items() if result[0] in MOVES)
    assert sorted(recorded) == moved, f"history entries by {recorded}, moves reported by {moved}"
    for entry in entries:
        command, reported = reports[entry["by"]]
        expected = rules.run(command)
        assert reported == expected, f"{entry['by']} reported {reported}; in the history's order it makes {expected}"
        assert (entry["action"], entry["version"], entry["previous"]) == (MOVES[expected[0]], *expected[1:]), entry
        states.append(copy.deepcopy(rules))
    for op, (command, reported) in reports.items():
        if reported[0] not in MOVES:
            possible = {copy.deepcopy(state).run(command) for state in states}
            assert reported in possible, f"{op} reported {reported}: at no point of the history ({possible})"
    model = client.get_registered_model(name)
    assert str(model.aliases[CHAMPION]) == rules.champion == (entries[-1]["version"] if entries else start.champion)
    tagged = {str(v.version) for v in registry.versions(client, name) if ROLLED_BACK_TAG in v.tags}
    assert tagged == rules.rolled_back


def race(commands: list[str], uri: str, name: str, workdir: Path) -> dict[str, tuple[str, tuple]]:
    """Run `hushkit <command>` for each command at the same moment, one process each; their outcomes by id."""
    workdir.mkdir()
    script = workdir / "worker.py"
    script.write_text(WORKER)
    barrier = workdir / "go"
    env = {**os.environ, **TELEMETRY_OFF}
    env.pop("MLFLOW_TRACKING_URI", None)
    processes = {}
    for n, command in enumerate(commands):
        op = f"op{n}-{command}"
        processes[op] = (command, subprocess.Popen(
            [sys.executable, str(script), str(workdir / f"ready-{n}"), str(barrier), command, "--model", name,
             "--tracking-uri", uri, "--params", str(workdir / "none.yaml"), "--user", op, "--reason", op],
            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    deadline = time.monotonic() + 300
    while sum(1 for path in workdir.glob("ready-*")) < len(commands):
        assert time.monotonic() < deadline and all(p.poll() is None for _, p in processes.values()), \
            [p.communicate() for _, p in processes.values() if p.poll() is not None]
        time.sleep(0.05)
    barrier.touch()
    reports = {}
    for op, (command, process) in processes.items():
        output, _ = process.communicate(timeout=300)
        reports[op] = (command, outcome(command, process.returncode, output))
    return reports


RACES = {"2 promotes": ["promote"] * 2,
         "promote and rollback": ["promote", "rollback"],
         "4 mixed": ["promote", "rollback"] * 2,
         "8 mixed": ["promote", "rollback"] * 4}


def prepare(client, name: str) -> Rules:
    """v1..v5; v1, v2, v3 promoted in turn (v3 is champion); v5 is @challenger."""
    made = add_versions(client, SCORES, name=name)
    for version in SETUP_CHAIN:
        client.set_registered_model_alias(name, CHALLENGER, version)
        assert registry.promote(client, name).promoted
    client.set_registered_model_alias(name, CHALLENGER, CONTENDER)
    return Rules(champion=SETUP_CHAIN[-1], chain=list(SETUP_CHAIN), challenger=CONTENDER,
                 scores={v: s for v, s in zip(made, SCORES)})


@pytest.mark.parametrize("label", sorted(RACES))
@pytest.mark.parametrize("backend", ["sqlite", "server"])
def test_concurrent_moves_equal_some_serial_order(backend, label, request, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)   # a sqlite store's ./mlruns lands here
    if backend == "sqlite":
        path = tmp_path / "mlflow.db"
        shutil.copy(request.getfixturevalue("mlflow_template_store"), path)
        uri = f"sqlite:///{path}"
    else:
        uri = request.getfixturevalue("mlflow_server")
    name = f"race-{label.replace(' ', '-')}"   # the server is shared: a model of its own
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    start = prepare(client, name)
    reports = race(RACES[label], uri, name, tmp_path / "race")
    entries = registry.history(client, name)[len(SETUP_CHAIN):]
    check_serial(start, reports, entries, client, name)
