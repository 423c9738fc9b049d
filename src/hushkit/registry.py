"""The registry gate over MLflow aliases (stages are deprecated): `promote` moves `champion` to the candidate
(`challenger`, set by the summary stage) only when it beats the champion on the same test set by a minimum margin,
`rollback` restores the previous champion, and every move is recorded (version tags + a history tag).

A move reads the aliases and the history, decides, then writes both: each one runs under the store-wide lock on
the model (hushkit.tracking.store_lock), so concurrent promotes and rollbacks, from any host sharing the store,
take effect one after the other, exactly as if they had been run in some order."""
from __future__ import annotations

import datetime
import getpass
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hushkit.tracking import CHECKPOINT_TAG, StoreLock, git_commit, store_lock

# The registry's names, defined here alone: the registered models (params mlflow.registered_model and
# tagging.registered_model override them), the alias the summary stages point at the best new version, and the alias
# `hushkit promote` moves. The rules below are the same for every registered model: they read the versions' tags.
REGISTERED_MODEL = "hushkit-denoiser"
REGISTERED_TAGGER = "hushkit-tagger"
CHAMPION = "champion"
CHALLENGER = "challenger"
MANIFEST_TAG = "data_manifest_sha256"   # export: a hash of the test set that scored the version (the denoisers':
                                        # data/mix/manifest.csv; the taggers': hushkit.tagging.data.split_sha256)
HISTORY_TAG = "champion_history"        # registered-model tag: JSON list of champion moves, oldest first
ROLLED_BACK_TAG = "rolled_back_at"      # on a version taken off @champion by a rollback: never promoted again by itself
HISTORY_MAX_ENTRIES = 50
HISTORY_MAX_CHARS = 5000                # MLflow's SQL stores keep registered-model tag values in a VARCHAR(5000)
LOWER_IS_BETTER = frozenset({"rtf"})    # every other test_<metric> (pesq, stoi, estoi, si_sdr, dnsmos_*): higher


class RegistryError(Exception):
    """The registry is not in a state promote/rollback can act on (missing model, version, alias or tag)."""


@dataclass(frozen=True)
class Decision:
    promoted: bool
    candidate: str                  # version numbers, as MLflow's REST API spells them
    champion: str | None            # the champion before the decision
    candidate_score: float
    champion_score: float | None
    margin: float | None            # candidate's improvement over the champion, in the metric's better direction
    message: str
    metric: str = "pesq"
    min_margin: float = 0.0

    @property
    def status(self) -> str:
        """promoted | unchanged (the candidate already is champion) | refused."""
        if self.promoted:
            return "promoted"
        return "unchanged" if self.candidate == self.champion else "refused"


@dataclass(frozen=True)
class Rollback:
    restored: str                   # the champion again
    replaced: str                   # the champion rolled back
    message: str


def provenance_tags(meta: dict[str, Any], checkpoint: Path) -> dict[str, str]:
    """The tags an export gives every version besides its test scores (`test_<metric>`) and MANIFEST_TAG: the
    architecture, the code's commit, a hash of the training params, and the checkpoint's sha256 (by which
    `checkpoint_version` finds it). `meta`: the checkpoint's (hushkit.models.load_checkpoint)."""
    from hushkit.io import sha256_file   # here: the registry commands import this module and stay light

    params = json.dumps(meta.get("train_params", {}), sort_keys=True).encode()
    return {"architecture": str(meta["model"]), "git_commit": git_commit(),
            "params_sha256": hashlib.sha256(params).hexdigest(), CHECKPOINT_TAG: sha256_file(checkpoint)}


def checkpoint_version(client: Any, name: str, checkpoint: Path) -> str | None:
    """The newest version of `name` exported from `checkpoint` (tagged with its sha256), None when the store has
    none (the model was exported against another store, or not yet)."""
    from hushkit.io import sha256_file

    escaped = name.replace("'", "\\'")
    found = client.search_model_versions(
        f"name = '{escaped}' and tags.`{CHECKPOINT_TAG}` = '{sha256_file(checkpoint)}'")
    return str(max(int(v.version) for v in found)) if found else None


def set_challenger(client: Any, name: str, version: str) -> None:
    """Point `challenger` at `version`: the candidate the next `promote` weighs against the champion."""
    client.set_registered_model_alias(name, CHALLENGER, str(version))


def challenge_with_checkpoint(client: Any, name: str, checkpoint: Path, export_stage: str) -> str:
    """Make the version of `name` exported from `checkpoint` the challenger, and say what happened: where the store
    holds no such version (exported against another store), the alias stays and the message names `export_stage`,
    which registers it."""
    version = checkpoint_version(client, name, checkpoint)
    if version is None:
        return (f"no version of {name} in {client.tracking_uri} holds its checkpoint (exported against another "
                f"store): @{CHALLENGER} not moved; `dvc repro -f {export_stage}` registers it here")
    set_challenger(client, name, version)
    return f"{name} v{version} is @{CHALLENGER}"


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def score(version: Any, metric: str) -> float:
    """A version's test score from its `test_<metric>` tag (written by the export stage)."""
    tag = f"test_{metric}"
    value = version.tags.get(tag)
    if value is None:
        scored = sorted(key[5:] for key in version.tags if key.startswith("test_"))
        raise RegistryError(f"{version.name} v{version.version} has no tag {tag!r} (its test metrics: "
                            f"{scored or 'none'}); pick one of those with --metric, or re-export the model")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise RegistryError(f"{version.name} v{version.version}: tag {tag}={value!r} is not a finite number")
    return number


def _user(user: str | None) -> str:
    if user:
        return user
    try:
        return getpass.getuser()     # LOGNAME / USER / ... then the password database
    except (OSError, KeyError):      # a container user with no passwd entry
        return "unknown"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _model(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(f"no registered model {name!r} at {client.tracking_uri}: the export stage registers "
                                "one version per architecture (`make repro`)") from None
        raise


def _aliases(model: Any) -> dict[str, str]:
    return {alias: str(version) for alias, version in model.aliases.items()}   # the sqlite store gives ints


def versions(client: Any, name: str) -> list[Any]:
    """Every version of the model, oldest first."""
    escaped = name.replace("'", "\\'")
    found: list[Any] = []
    token = None
    while True:   # one page holds 10000 versions; page on rather than miss some
        page = client.search_model_versions(f"name = '{escaped}'", page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            return sorted(found, key=lambda v: int(v.version))


def best_version(client: Any, name: str, metric: str) -> Any:
    """The best-scoring version on the newest version's test set (tie: the newer one)."""
    every = versions(client, name)
    if not every:
        raise RegistryError(f"{name!r} has no versions yet: the export stage registers them (`make repro`)")
    manifest = every[-1].tags.get(MANIFEST_TAG)
    pool = [v for v in every if v.tags.get(MANIFEST_TAG) == manifest and f"test_{metric}" in v.tags
            and ROLLED_BACK_TAG not in v.tags]
    if not pool:
        raise RegistryError(f"no version of {name!r} on the newest test set ({MANIFEST_TAG}={manifest}) has a "
                            f"test_{metric} tag and was never rolled back")
    sign = 1.0 if higher_is_better(metric) else -1.0
    return max(pool, key=lambda v: (sign * score(v, metric), int(v.version)))


def history(client: Any, name: str) -> list[dict[str, Any]]:
    """Every champion move recorded (oldest first; the oldest are dropped past the tag's size limit)."""
    raw = _model(client, name).tags.get(HISTORY_TAG)
    if not raw:
        return []
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as err:
        raise RegistryError(f"{name!r}: tag {HISTORY_TAG} is not JSON ({err}); delete it to start a new history")
    return list(entries)


def _record(client: Any, name: str, entry: dict[str, Any]) -> None:
    entries = (history(client, name) + [entry])[-HISTORY_MAX_ENTRIES:]
    while len(entries) > 1 and len(json.dumps(entries)) > HISTORY_MAX_CHARS:
        entries.pop(0)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(entries))


def champion_chain(entries: list[dict[str, Any]]) -> list[str]:
    """The champions in order, as the history leaves them: a promotion pushes, a rollback pops."""
    chain: list[str] = []
    for entry in entries:
        version, previous = str(entry["version"]), entry.get("previous")
        if entry["action"] == "rollback" and chain and chain[-1] == str(previous):
            chain.pop()
        # A promotion over a champion set outside `promote` (or lost to trimming) still records that champion.
        elif entry["action"] == "promote" and previous is not None and (not chain or chain[-1] != str(previous)):
            chain.append(str(previous))
        if not chain or chain[-1] != version:
            chain.append(version)
    return chain


def promote(client: Any, name: str, *, metric: str = "pesq", min_margin: float = 0.0,
            candidate_alias: str = CHALLENGER, user: str | None = None, reason: str | None = None) -> Decision:
    """Make the candidate (`@challenger`; without one, the best version on the newest test set) the champion when
    there is none, or when it beats the champion on the same test set by at least `min_margin`."""
    if not min_margin >= 0:
        raise ValueError(f"min_margin must be >= 0 (got {min_margin}): a negative margin would let a worse model "
                         "replace a better champion")
    _model(client, name)   # a missing model is named before any lock is taken
    with store_lock(client, name) as lock:
        return _promote(client, name, lock, metric=metric, min_margin=min_margin, candidate_alias=candidate_alias,
                        user=user, reason=reason)


def _promote(client: Any, name: str, lock: StoreLock, *, metric: str, min_margin: float, candidate_alias: str,
             user: str | None, reason: str | None) -> Decision:
    model = _model(client, name)
    aliases = _aliases(model)
    if candidate_alias in aliases:
        candidate = client.get_model_version(name, aliases[candidate_alias])
        label = f"v{candidate.version} (@{candidate_alias})"
    else:
        candidate = best_version(client, name, metric)
        label = f"v{candidate.version} (no @{candidate_alias}: best {metric} on the newest test set)"
    candidate_version, candidate_score = str(candidate.version), score(candidate, metric)
    direction = "higher" if higher_is_better(metric) else "lower"
    current = aliases.get(CHAMPION)

    def decide(promoted: bool, message: str, champion_score: float | None = None,
               margin: float | None = None) -> Decision:
        return Decision(promoted, candidate_version, current, candidate_score, champion_score, margin, message,
                        metric, min_margin)

    if current == candidate_version:
        return decide(False, f"{label} already is @{CHAMPION} ({metric} {candidate_score:.4f}); nothing to do",
                      candidate_score, 0.0)
    if ROLLED_BACK_TAG in candidate.tags:
        # A rollback says the metric missed something: the next scheduled `promote` must not undo it.
        tags = candidate.tags
        return decide(False, (
            f"refused: {label} was rolled back from @{CHAMPION} at {tags[ROLLED_BACK_TAG]} by "
            f"{tags.get('rolled_back_by', '?')} ({tags.get('rollback_reason', 'no reason given')}); register a new "
            f"version, or delete its tag {ROLLED_BACK_TAG} to let it compete again"))
    if current is None:
        decision = decide(True, f"no champion yet: {label}, {metric} {candidate_score:.4f}, becomes @{CHAMPION}")
        _make_champion(client, name, lock, decision, user, reason)
        return decision

    champion = client.get_model_version(name, current)
    for version in (candidate, champion):
        if not version.tags.get(MANIFEST_TAG):
            raise RegistryError(f"{name} v{version.version} has no tag {MANIFEST_TAG!r}: cannot tell which test set "
                                "scored it")
    candidate_set, champion_set = candidate.tags[MANIFEST_TAG], champion.tags[MANIFEST_TAG]
    if candidate_set != champion_set:
        return decide(False, (
            f"refused: champion v{current} was scored on test set {champion_set[:12]}, {label} on "
            f"{candidate_set[:12]}; scores on different test sets are not comparable. Re-score the champion "
            f"on the current test set (e.g. `hushkit evaluate --model champion=models:/{name}/{current} ...` on the "
            f"test audio) and set its tags {MANIFEST_TAG} and test_{metric}, or re-run the pipeline at its "
            f"git_commit {champion.tags.get('git_commit', '?')[:12]} on the current data so both come from it."))

    champion_score = score(champion, metric)
    # Tags hold 4 decimals: round the difference so that float noise cannot decide a margin.
    margin = round((candidate_score - champion_score) * (1 if higher_is_better(metric) else -1), 6)
    numbers = (f"{metric} ({direction} is better): {label} {candidate_score:.4f} vs champion v{current} "
               f"{champion_score:.4f}, margin {margin:+.4f} (minimum {min_margin:.4f})")
    if margin <= 0:
        return decide(False, f"refused: not better than the champion; {numbers}", champion_score, margin)
    if margin < min_margin:
        return decide(False, f"refused: better by less than the minimum margin; {numbers}", champion_score, margin)
    decision = decide(True, f"promoted to @{CHAMPION}: {numbers}", champion_score, margin)
    _make_champion(client, name, lock, decision, user, reason)
    return decision


def _make_champion(client: Any, name: str, lock: StoreLock, decision: Decision, user: str | None,
                   reason: str | None) -> None:
    at, by = _now(), _user(user)
    lock.ensure_held()
    why = f"{reason}; {decision.message}" if reason else decision.message
    client.set_registered_model_alias(name, CHAMPION, decision.candidate)
    for key, value in {"promoted_at": at, "promoted_by": by, "promotion_reason": why}.items():
        client.set_model_version_tag(name, decision.candidate, key, value)
    _record(client, name, {"action": "promote", "version": decision.candidate, "previous": decision.champion,
                           "at": at, "by": by, "metric": decision.metric, "score": decision.candidate_score,
                           "previous_score": decision.champion_score, "reason": (reason or "")[:200]})


def rollback(client: Any, name: str, *, user: str | None = None, reason: str | None = None) -> Rollback:
    """Move `champion` back to the champion before it (as the history records) and record the rollback."""
    _model(client, name)   # a missing model is named before any lock is taken
    with store_lock(client, name) as lock:
        return _rollback(client, name, lock, user=user, reason=reason)


def _rollback(client: Any, name: str, lock: StoreLock, *, user: str | None, reason: str | None) -> Rollback:
    current = _aliases(_model(client, name)).get(CHAMPION)
    if current is None:
        raise RegistryError(f"{name!r} has no @{CHAMPION}: nothing to roll back")
    chain = champion_chain(history(client, name))
    if not chain:
        raise RegistryError(f"{name!r}: no promotion history (tag {HISTORY_TAG}); @{CHAMPION} v{current} was set "
                            "outside `hushkit promote`, so there is no previous champion to restore")
    if chain[-1] != current:
        raise RegistryError(f"{name!r}: @{CHAMPION} is v{current} but the promotion history ends at v{chain[-1]}: "
                            f"the alias was moved outside `hushkit promote`; set it back by hand "
                            f"(MlflowClient().set_registered_model_alias) or promote")
    if len(chain) < 2:
        raise RegistryError(f"{name!r}: v{current} is the first recorded @{CHAMPION}; there is no previous "
                            "champion to roll back to")
    restored = chain[-2]
    client.get_model_version(name, restored)   # fails clearly if that version was deleted
    at, by = _now(), _user(user)
    message = f"rolled back @{CHAMPION} from v{current} to v{restored}"
    lock.ensure_held()
    client.set_registered_model_alias(name, CHAMPION, restored)
    why = f"{reason}; {message}" if reason else message
    for key, value in {ROLLED_BACK_TAG: at, "rolled_back_by": by, "rollback_reason": why}.items():
        client.set_model_version_tag(name, current, key, value)
    _record(client, name, {"action": "rollback", "version": restored, "previous": current, "at": at, "by": by,
                           "reason": (reason or "")[:200]})
    return Rollback(restored, current, message)
