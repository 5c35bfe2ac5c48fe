"""Nsight Compute, the transformation step: ncu's CSV exports parsed, and any kernel's counters turned into the tidy
rows of the ncu_metrics table and the stalls table derived from them.

The CSV exports are the fallback source (collectors/ncu/read.py reads the .ncu-rep exactly through NVIDIA's
`ncu_report` and builds its rows with the helpers here, so both sources give frames of the same shape):

    ncu --import profile.ncu-rep --csv --page raw     --print-units base   > raw.csv
    ncu --import profile.ncu-rep --csv --page details --print-units base   > details.csv

The raw page has one header row, one units row, then one row per profiled kernel; numbers carry thousands
separators and are rounded to two decimals. The details page has one row per (kernel, section, metric) with
Section Name / Metric Name / Metric Unit / Metric Value columns, plus rows for the sections' rules. Both carry the
NVTX state of each kernel in a column whose name mentions the push/pop range
("thread Domain:Push/Pop_Range:PL_Type:PL_Value:..."): the parser finds it by name and recovers the case from
the range name inside it.
"""

from __future__ import annotations

import csv
import io
import math
import re

import pandas as pd

from collectors.ncu import metrics as M
from collectors.ncu.profile import NVTX_DOMAIN
from runstore.schema import PROBE_CONFIG_ID

# The ncu_metrics columns every source produces, in this order (runstore/schema.py documents them); the case's
# B..dtype columns are merged in after them when the cases are known.
TIDY_COLUMNS = ["impl", "config_id", "kernel", "kernel_index", "metric", "raw_metric", "source", "value", "unit"]

_NUMBER_RE = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d*)?([eE][+-]?\d+)?$|^[+-]?\.\d+([eE][+-]?\d+)?$")


def to_number(text) -> float:
    """A number from an ncu CSV cell ("1,234.5" -> 1234.5); NaN for empty, "n/a" and non-numeric cells."""
    if text is None:
        return math.nan
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip()
    if not s or not _NUMBER_RE.match(s):
        return math.nan
    return float(s.replace(",", ""))


def _csv_rows(text: str) -> list[list[str]]:
    # ncu may print its own log lines (==PROF==, ==WARNING==) before the CSV.
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("==")]
    return list(csv.reader(io.StringIO("\n".join(lines))))


def is_metric_column(name: str) -> bool:
    """Raw ncu metric columns look like `unit__counter[.rollup...]`; identification columns do not."""
    return "__" in name and " " not in name.strip()


def find_nvtx_column(columns) -> str | None:
    """The export's column that holds each kernel's NVTX push/pop ranges (its name varies with ncu versions)."""
    cols = list(columns)
    for needle in ("push/pop", "pushpop", "nvtx", "start/stop", "range"):
        for c in cols:
            if needle in str(c).lower():
                return c
    return None


def parse_raw_csv(text: str) -> pd.DataFrame:
    """The `--page raw` export as a wide DataFrame: one row per profiled kernel, one column per header field.

    Metric columns (see `is_metric_column`) are floats; identification columns stay text. The units row is kept
    in `df.attrs["units"]` ({column: unit}).
    """
    rows = _csv_rows(text)
    if not rows:
        raise ValueError("the raw ncu export is empty.")
    header = [h.strip() for h in rows[0]]
    if "ID" not in header and not any(is_metric_column(h) for h in header):
        raise ValueError("the raw ncu export has no header row with an ID column and metric columns.")
    body = rows[1:]
    units: dict[str, str] = {}
    if body:
        first = body[0] + [""] * (len(header) - len(body[0]))
        id_pos = header.index("ID") if "ID" in header else None
        looks_like_units = (id_pos is not None and not first[id_pos].strip()) or all(
            not first[i].strip() or math.isnan(to_number(first[i]))
            for i, h in enumerate(header) if is_metric_column(h))
        if looks_like_units:
            units = {h: first[i].strip() for i, h in enumerate(header) if first[i].strip()}
            body = body[1:]
    records = []
    for r in body:
        r = r + [""] * (len(header) - len(r))
        records.append(r[:len(header)])
    df = pd.DataFrame(records, columns=header)
    df = df.loc[:, ~pd.Index(header).duplicated()]
    for c in df.columns:
        if is_metric_column(c):
            df[c] = df[c].map(to_number).astype(float)
    if "ID" in df.columns:
        df["ID"] = df["ID"].map(to_number)
    df.attrs["units"] = units
    return df


def _col(df: pd.DataFrame, *names: str) -> str | None:
    lower = {str(c).strip().lower(): c for c in df.columns}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def parse_details_csv(text: str) -> pd.DataFrame:
    """The `--page details` export as a long DataFrame with columns
    id, kernel, nvtx, section, metric_name, unit, value (float or NaN), value_text, rule_name, rule_type,
    rule_description, estimated_speedup. Rule-only rows (no metric name) are kept with metric_name empty."""
    rows = _csv_rows(text)
    if not rows:
        raise ValueError("the details ncu export is empty.")
    header = [h.strip() for h in rows[0]]
    df = pd.DataFrame([(r + [""] * (len(header) - len(r)))[:len(header)] for r in rows[1:]], columns=header)
    section = _col(df, "Section Name")
    metric = _col(df, "Metric Name")
    value = _col(df, "Metric Value")
    if section is None or metric is None or value is None:
        raise ValueError("the details ncu export has no Section Name / Metric Name / Metric Value columns.")
    nvtx = find_nvtx_column(df.columns)
    out = pd.DataFrame({
        "id": df[_col(df, "ID")].map(to_number) if _col(df, "ID") else math.nan,
        "kernel": df[_col(df, "Kernel Name")] if _col(df, "Kernel Name") else "",
        "nvtx": df[nvtx] if nvtx else "",
        "section": df[section].str.strip(),
        "metric_name": df[metric].str.strip(),
        "unit": df[_col(df, "Metric Unit")].str.strip() if _col(df, "Metric Unit") else "",
        "value": df[value].map(to_number).astype(float),
        "value_text": df[value].str.strip(),
    })
    for name, label in (("rule_name", "Rule Name"), ("rule_type", "Rule Type"),
                        ("rule_description", "Rule Description"), ("estimated_speedup", "Estimated Speedup")):
        c = _col(df, label)
        out[name] = df[c] if c else ""
    out["estimated_speedup"] = out["estimated_speedup"].map(to_number)
    return out


# ---- which case a kernel belongs to -----------------------------------------------------------------------------
# `<impl>:<config_id>` for attention cases (impl may be an extra case's label such as `stage5_full#3fa9c2d1`),
# `<probe>:probe` for the ceiling microbenchmarks (schema.PROBE_CONFIG_ID)
_CASE_RE = re.compile(r"([A-Za-z][A-Za-z0-9_]*(?:#[A-Za-z0-9_.-]+)?):"
                      r"(B\d+-H\d+-S\d+-D\d+-(?:causal|full)-[A-Za-z0-9]+|" + re.escape(PROBE_CONFIG_ID) + r"\b)")


def known_ranges(cases: dict[str, dict] | None) -> dict[str, tuple[str, str]]:
    """{range name: (impl, config_id)} of the cases a session profiled ({range name: case columns})."""
    return {name: (c["impl"], c["config_id"]) for name, c in (cases or {}).items()}


def case_of(nvtx_cell: str, known: dict[str, tuple[str, str]] | None = None) -> tuple[str, str] | None:
    """(impl, config_id) of the perfmodel range in one NVTX cell of a CSV export, or None.

    With `known` ({range name: (impl, config_id)}) the longest known name found in the cell wins; otherwise the
    cell is searched for `<impl>:<config_id>` with config ids as kernels.workload writes them.
    """
    cell = str(nvtx_cell or "")
    if known:
        hits = [name for name in known if name in cell]
        if hits:
            return known[max(hits, key=len)]
    for m in _CASE_RE.finditer(cell):
        if m.group(1) != NVTX_DOMAIN:
            return m.group(1), m.group(2)
    return None


def case_of_ranges(ranges: list[tuple[str, str]], known: dict[str, tuple[str, str]] | None = None
                   ) -> tuple[str, str] | None:
    """(impl, config_id) of a kernel from its NVTX push/pop ranges as [(domain, range name), ...], or None.

    The same rule as `case_of` on a CSV cell: a range named in `known` wins (the longest, in any domain);
    otherwise a range of the perfmodel domain named `<impl>:<config_id>`.
    """
    if known:
        hits = [name for _, name in ranges if name in known]
        if hits:
            return known[max(hits, key=len)]
    for domain, name in ranges:
        m = _CASE_RE.fullmatch(name) if domain == NVTX_DOMAIN else None
        if m:
            return m.group(1), m.group(2)
    return None


# A kernel profiled outside the toolkit (`perfmodel import`) belongs to no case: it gets an implementation name of
# its own (its innermost NVTX range, else its kernel's short name) and this config id.
IMPORTED_CONFIG = "imported"


def short_kernel_name(kernel: str) -> str:
    """A kernel's function name without its namespaces, template arguments and parameters
    ('void at::native::(anonymous namespace)::fmha<half, 64>(Params)' -> 'fmha')."""
    name = str(kernel or "").replace("(anonymous namespace)", "anonymous")
    name = name.split("(")[0].split("<")[0].strip()
    name = name.split()[-1] if name.split() else name
    return (name.split("::")[-1] or str(kernel))[:80]


def imported_case(range_names: list[str], kernel: str) -> tuple[str, str]:
    """(impl, config_id) of a kernel of an imported profile: its innermost NVTX range, else its short kernel name."""
    names = [n.strip() for n in range_names if n and n.strip()]
    return (names[-1][:80] if names else short_kernel_name(kernel)), IMPORTED_CONFIG


_MSG = re.compile(r":(?:REGISTERED|ASCII|UNICODE):([^\"]+)")


def ranges_of_cell(nvtx_cell) -> list[str]:
    """The range names in a CSV export's NVTX cell, outermost first. ncu writes each range as
    'domain:range:PL_Type:PL_Value:CLR_Type:Color:Msg_Type:Msg' (names may hold ':'), so the name is what follows
    the message type; a cell in another form is taken whole."""
    cell = str(nvtx_cell or "").strip()
    if not cell or cell.lower() in ("nan", "none", "n/a"):
        return []
    names = [m.strip() for m in _MSG.findall(cell)]
    if names:
        return names
    text = cell.strip('" ').lstrip("0123456789 ").strip('" ')
    return [text] if text else []


# ---- tidy rows --------------------------------------------------------------------------------------------------
# canonical units of short names, and how to get there from what ncu may print
_SCALE_TO = {
    "_ns": ("ns", {"nsecond": 1, "ns": 1, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6,
                   "second": 1e9, "s": 1e9}),
    "_bytes": ("byte", {"byte": 1, "kbyte": 1e3, "mbyte": 1e6, "gbyte": 1e9, "tbyte": 1e12}),
    "_hz": ("Hz", {"hz": 1, "khz": 1e3, "mhz": 1e6, "ghz": 1e9, "cycle/second": 1, "cycle/usecond": 1e6,
                   "cycle/nsecond": 1e9, "cycle/msecond": 1e3}),
}


def _canonical(short: str, value: float, unit: str) -> tuple[float, str]:
    for suffix, (target, scale) in _SCALE_TO.items():
        if short.endswith(suffix):
            factor = scale.get(unit.strip().lower())
            if factor is not None:
                return value * factor, target
    return value, unit


def raw_row(base: dict, raw_metric: str, value: float, unit: str) -> dict:
    """One ncu_metrics row of a raw metric: its short name (collectors/ncu/metrics.py) and canonical unit."""
    short = M.short_name(raw_metric)
    v, unit = _canonical(short, float(value), unit or "")
    return {**base, "metric": short, "raw_metric": raw_metric, "source": "raw", "value": v, "unit": unit}


def details_row(base: dict, section: str, metric_name: str, value: float, unit: str) -> dict:
    """One ncu_metrics row of a section's metric as the details page shows it: '<Section>: <Metric Name>'."""
    label = f"{section}: {metric_name}"
    return {**base, "metric": label, "raw_metric": label, "source": "details", "value": float(value),
            "unit": unit or ""}


def tidy_frame(rows: list[dict], cases: dict[str, dict] | None = None) -> pd.DataFrame:
    """The ncu_metrics frame of `rows` (raw_row / details_row), with each case's columns from `cases` merged in."""
    df = pd.DataFrame(rows, columns=TIDY_COLUMNS)
    by_case = {(c["impl"], c["config_id"]): c for c in (cases or {}).values()}
    if by_case and not df.empty:
        extra = pd.DataFrame([dict(c) for c in by_case.values()])
        keep = [c for c in extra.columns if c not in ("impl", "config_id")]
        df = df.merge(extra[["impl", "config_id", *keep]], on=["impl", "config_id"], how="left")
    return df


def tidy_metrics(raw: pd.DataFrame, details: pd.DataFrame | None = None,
                 cases: dict[str, dict] | None = None, any_kernel: bool = False) -> pd.DataFrame:
    """Long rows of the ncu_metrics table (runstore/schema.py) from parsed CSV exports.

    `cases` maps range names to the case's columns ({"impl", "config_id", "B", ..., "dtype"}); kernels whose
    NVTX cell names no case are kept with impl and config_id from the cell when it has the perfmodel form, and
    dropped otherwise (they were not ours to profile), unless `any_kernel` (an imported profile), which keeps every
    kernel under `imported_case`. `kernel_index` numbers the kernels of one case in the
    order ncu profiled them. Details rows are added with source "details" and metric "<Section>: <Metric>".
    """
    known = known_ranges(cases)
    nvtx_col = find_nvtx_column(raw.columns)
    kernel_col = _col(raw, "Kernel Name") or _col(raw, "Function Name")
    units = raw.attrs.get("units", {})
    rows = []
    kernel_ids: dict[float, tuple] = {}
    counters: dict[tuple[str, str], int] = {}
    order = raw.sort_values("ID") if "ID" in raw.columns else raw
    for _, r in order.iterrows():
        case = case_of(r[nvtx_col], known) if nvtx_col else None
        kernel = str(r[kernel_col]) if kernel_col else ""
        if case is None and any_kernel:
            case = imported_case(ranges_of_cell(r[nvtx_col]) if nvtx_col else [], kernel)
        if case is None:
            continue
        index = counters.get(case, 0)
        counters[case] = index + 1
        if "ID" in raw.columns:
            kernel_ids[r["ID"]] = (case, kernel, index)
        base = {"impl": case[0], "config_id": case[1], "kernel": kernel, "kernel_index": index}
        for col in raw.columns:
            if not is_metric_column(col):
                continue
            value = r[col]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            rows.append(raw_row(base, col, value, units.get(col, "")))
    if details is not None and not details.empty:
        for _, d in details.iterrows():
            if not d["metric_name"] or (isinstance(d["value"], float) and math.isnan(d["value"])):
                continue
            hit = kernel_ids.get(d["id"])
            if hit is None:
                case = case_of(d["nvtx"], known)
                if case is None and any_kernel:
                    case = imported_case(ranges_of_cell(d["nvtx"]), str(d["kernel"]))
                if case is None:
                    continue
                hit = (case, str(d["kernel"]), None)
            case, kernel, index = hit
            base = {"impl": case[0], "config_id": case[1], "kernel": kernel, "kernel_index": index}
            rows.append(details_row(base, d["section"], d["metric_name"], d["value"], d["unit"]))
    return tidy_frame(rows, cases)


def stalls_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """Rows of the stalls table: per (case, kernel) and stall reason, the warp cycles stalled per issued
    instruction and its fraction of the sum over all reasons (which ncu reports as Warp Cycles Per Issued
    Instruction). Kernels without stall metrics contribute no rows."""
    cols = ["impl", "config_id", "kernel", "kernel_index", "reason", "cycles_per_issue", "fraction"]
    if tidy.empty:
        return pd.DataFrame(columns=cols)
    raw = tidy[tidy["source"] == "raw"].copy()
    raw["reason"] = raw["raw_metric"].map(M.stall_reason)
    st = raw[raw["reason"].notna()].copy()
    if st.empty:
        return pd.DataFrame(columns=cols)
    keys = ["impl", "config_id", "kernel", "kernel_index"]
    st = st.rename(columns={"value": "cycles_per_issue"})
    total = st.groupby(keys, dropna=False)["cycles_per_issue"].transform("sum")
    st["fraction"] = (st["cycles_per_issue"] / total).where(total > 0)
    extra = [c for c in ("B", "H", "S", "D", "causal", "dtype") if c in st.columns]
    return st[cols + extra].reset_index(drop=True)
