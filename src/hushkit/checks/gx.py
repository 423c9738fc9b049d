"""Run a Great Expectations suite on a DataFrame; save the full result; stop the stage with a readable error.

Every stage describes what it reads and writes as one row per file (or array) and checks those rows with a suite
from `hushkit.checks.suites`. `validate` writes GX's complete result as JSON beside the stage's outputs and raises
`DataCheckError` naming each failed expectation and the offending ids (file paths) with their values.

Two GX 1.24 behaviours are corrected here, so a check cannot pass by accident:
- an empty frame passes every column expectation vacuously: `validate` refuses it ("no rows to check");
- value expectations (between / in set / regex) skip NaN as "missing": `validate` adds a not-null check for each
  such column and treats +-inf in float columns as missing too, so NaN or inf in a checked column always fails.

great_expectations costs ~2.5 s to import: it is imported on first use, and its context is made once per process.
"""
from __future__ import annotations

import logging
import math
import threading
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from hushkit.errors import UserError
from hushkit.io import write_json

MAX_IDS_SHOWN = 10
ROW_COLUMN = "_row"  # 0-based row of the checked frame, carried in GX's unexpected_index_list
_NULL_SKIPPING = {  # GX counts NaN as "missing" in these and never flags it
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_match_regex",
}
_ADDED_META = "hushkit_added"
_ORDER_META = "hushkit_order"

_lock = threading.Lock()
_batch_definition: Any = None


class DataCheckError(UserError, RuntimeError):
    """A data check failed. `failures`: one dict per failed expectation; `report_path`: the full JSON result."""

    def __init__(self, message: str, *, failures: list[dict] | None = None, report_path: Path | None = None):
        super().__init__(message)
        self.failures = failures or []
        self.report_path = report_path


def great_expectations():
    """The great_expectations module, imported on first use with its logging and import warnings quietened."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx
    # This GX module forces its own logger to INFO ("Created temporary directory ... for ephemeral docs site").
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    return gx


def _batch_def():
    """One ephemeral context, pandas datasource and whole-dataframe batch definition per process."""
    global _batch_definition
    with _lock:
        if _batch_definition is None:
            gx = great_expectations()
            from great_expectations.data_context.types.base import ProgressBarsConfig

            ctx = gx.get_context(mode="ephemeral")
            ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
            asset = ctx.data_sources.add_pandas("hushkit").add_dataframe_asset("frame")
            _batch_definition = asset.add_batch_definition_whole_dataframe("whole")
        return _batch_definition


def validate(
    df: pd.DataFrame,
    expectations: list,
    *,
    name: str,
    report_path: str | Path,
    id_column: str = "path",
    label: str = "data",
    show_columns: Sequence[str] | None = None,
    allow_missing: Iterable[str] = (),
) -> dict:
    """Check `df` against `expectations`; write the full result to `report_path`; raise DataCheckError on failure.

    name: the suite's name; label: what is checked, e.g. "mix output" (the message starts "mix output check 'name'").
    id_column: the column that names a row in messages (a file path usually).
    show_columns: extra columns printed beside each offending id; None shows `error` when the frame has one.
    allow_missing: columns whose NaN/None is acceptable (no not-null check is added for them).
    Returns {"suite", "evaluated" (expectations), "rows", "success": True, "report"} on success.
    GX sees one extra column, `_row` (the row number, used to print offending values exactly as they were), so an
    ExpectTableColumnsToMatchSet with exact_match=True would need it listed.
    """
    report_path = Path(report_path)
    title = f"{label} check '{name}'"
    if id_column not in df.columns:
        _fail_early(title, report_path, name, f"id column {id_column!r} is missing (columns: {list(df.columns)})")
    if ROW_COLUMN in df.columns:
        raise ValueError(f"{title}: column {ROW_COLUMN!r} is reserved for the checker")
    if len(df) == 0:
        _fail_early(title, report_path, name, "no rows to check")
    if show_columns is None:
        show_columns = ["error"] if "error" in df.columns else []
    show_columns = [c for c in show_columns if c in df.columns and c != id_column]

    original = df.reset_index(drop=True)
    frame = original.copy()
    frame[ROW_COLUMN] = np.arange(len(frame))
    suite_exps = _prepare(expectations, frame, set(allow_missing))

    gx = great_expectations()
    suite = gx.ExpectationSuite(name=name, expectations=suite_exps)
    if len(suite.expectations) != len(suite_exps):  # GX logs and drops an invalid expectation instead of raising
        raise ValueError(f"{title}: GX rejected {len(suite_exps) - len(suite.expectations)} expectation(s)")
    batch = _batch_def().get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(
        suite,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [id_column, ROW_COLUMN]},
    )
    report = _json_safe(result.to_json_dict())
    # GX stamps the load time into the result: dropped, so the same data gives a byte-identical report (the report
    # sits in a DVC output; a timestamp would make every rerun look like new data and retrain everything downstream).
    report.get("meta", {}).get("batch_markers", {}).pop("ge_load_time", None)
    write_json(report_path, report)

    n_expectations = len(report["results"])
    if result.success:
        return {"suite": name, "evaluated": n_expectations, "rows": len(frame), "success": True,
                "report": str(report_path)}

    failed = sorted((r for r in report["results"] if not r["success"]), key=_order)
    failures = [_failure(r, original, id_column, show_columns) for r in failed]
    lines = [f"{title} failed ({len(failures)} of {n_expectations} expectations, {len(frame)} rows); "
             f"full report: {report_path}"]
    seen: set = set()  # show_columns (e.g. a read error) are printed at an id's first appearance only
    lines += [f"  - {_describe(f)}: {_detail(f, seen, show_columns)}" for f in failures]
    raise DataCheckError("\n".join(lines), failures=failures, report_path=report_path)


def _fail_early(title: str, report_path: Path, name: str, reason: str) -> None:
    write_json(report_path, {"success": False, "suite_name": name, "error": reason, "results": []})
    failure = {"expectation": None, "kwargs": {}, "ids": [], "values": [], "unexpected_count": None,
               "observed_value": None, "error": reason, "note": ""}
    raise DataCheckError(f"{title} failed: {reason}; report: {report_path}", failures=[failure],
                         report_path=report_path)


def _prepare(expectations: list, frame: pd.DataFrame, allow_missing: set[str]) -> list:
    """Copy the caller's expectations (GX binds them to a suite), number them, add not-null checks, turn inf to NaN."""
    gx = great_expectations()
    prepared, null_checked, needs_not_null = [], set(), {}
    for i, exp in enumerate(expectations):
        prepared.append(exp.copy(deep=True, update={"meta": {**(exp.meta or {}), _ORDER_META: i}}))
        column = getattr(exp, "column", None)
        if exp.expectation_type == "expect_column_values_to_not_be_null":
            null_checked.add(column)
        elif exp.expectation_type in _NULL_SKIPPING and column not in needs_not_null:
            # the rows the value check covers (its row_condition, if any) are the rows that must not be null
            needs_not_null[column] = {key: getattr(exp, key) for key in ("row_condition", "condition_parser")
                                      if getattr(exp, key, None)}
    for column, condition in needs_not_null.items():
        if column not in frame.columns:
            continue  # the value expectation itself reports the missing column
        if pd.api.types.is_float_dtype(frame[column]):
            frame[column] = frame[column].replace([np.inf, -np.inf], np.nan)
        if column in null_checked or column in allow_missing:
            continue
        meta = {_ADDED_META: "NaN/None/inf would be skipped by the value checks on this column",
                _ORDER_META: len(prepared)}
        prepared.append(gx.expectations.ExpectColumnValuesToNotBeNull(column=column, meta=meta, **condition))
    return prepared


def _order(result: dict) -> int:
    return (result["expectation_config"].get("meta") or {}).get(_ORDER_META, 10**6)


def _failure(result: dict, original: pd.DataFrame, id_column: str, show_columns: list[str]) -> dict:
    config, res = result["expectation_config"], result.get("result") or {}
    kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
    columns = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs] + list(kwargs.get("column_list", []))
    shown = [c for c in columns if c != id_column and c in original.columns] + show_columns
    rows = [entry[ROW_COLUMN] for entry in res.get("unexpected_index_list") or [] if isinstance(entry, dict)]
    return {
        "expectation": config["type"],
        "kwargs": kwargs,
        "ids": [_plain(original.at[row, id_column]) for row in rows],
        "values": [{c: _plain(original.at[row, c]) for c in shown} for row in rows],
        "unexpected_count": res.get("unexpected_count"),
        "observed_value": res.get("observed_value"),
        "details": res.get("details"),
        "error": _exception_message(result.get("exception_info")),
        "note": "NaN and inf count as null" if (config.get("meta") or {}).get(_ADDED_META) else "",
    }


def _describe(failure: dict) -> str:
    kwargs = dict(failure["kwargs"])
    condition = kwargs.pop("row_condition", None)
    kwargs.pop("condition_parser", None)
    if isinstance(condition, dict):  # GX 1.x stores a pandas condition as {"type": ..., "pass_through_filter": ...}
        condition = condition.get("pass_through_filter") or condition
    args = ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items())
    where = f" where {condition}" if condition else ""
    note = f" [{failure['note']}]" if failure["note"] else ""
    return f"{failure['expectation']}({args}){where}{note}"


def _detail(failure: dict, seen: set, show_columns: list[str]) -> str:
    if failure["error"]:
        return f"error: {failure['error']}"
    if failure["ids"]:
        parts = []
        for id_, values in list(zip(failure["ids"], failure["values"]))[:MAX_IDS_SHOWN]:
            shown = ", ".join(f"{c}={_short(v, 200 if c in show_columns else 80)}" for c, v in values.items()
                              if v not in ("", None) and not (c in show_columns and id_ in seen))
            seen.add(id_)
            parts.append(f"{id_} ({shown})" if shown else str(id_))
        total = failure["unexpected_count"] or len(failure["ids"])
        more = total - min(len(failure["ids"]), MAX_IDS_SHOWN)
        return "; ".join(parts) + (f"; ... and {more} more" if more > 0 else "")
    mismatched = (failure.get("details") or {}).get("mismatched")
    if isinstance(mismatched, dict) and mismatched.get("missing"):
        return f"missing columns {mismatched['missing']}"
    if failure["observed_value"] is not None:
        column = failure["kwargs"].get("column")
        return f"observed {column}={_short(failure['observed_value'])}" if column else \
            f"observed {_short(failure['observed_value'])}"
    if failure["kwargs"].get("column") and failure["expectation"] == "expect_column_to_exist":
        return "column missing"
    return "failed"


def _exception_message(info: Any) -> str:
    """GX gives {raised_exception, exception_message} or, when a metric failed, {metric_id: {...}}."""
    if not isinstance(info, dict):
        return ""
    if "raised_exception" in info:
        return (info.get("exception_message") or "") if info.get("raised_exception") else ""
    messages = [v.get("exception_message") or "" for v in info.values() if isinstance(v, dict)]
    return "; ".join(dict.fromkeys(m.strip().splitlines()[0] for m in messages if m.strip()))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _short(value: Any, limit: int = 80) -> str:
    if isinstance(value, float):
        text = repr(round(value, 6)) if math.isfinite(value) else str(value)
    else:
        text = repr(value) if isinstance(value, str) and value == "" else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_safe(obj: Any) -> Any:
    """Strict JSON: GX results carry NaN/inf (e.g. unexpected values), which json.dumps would write as bare tokens."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else str(value)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
