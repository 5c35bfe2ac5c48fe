"""The report as Markdown: the header, each section's introduction and its tables (the figures are the HTML
version's).
"""

from __future__ import annotations


import pandas as pd

from perfmodel.reports.report_data import SECTION_INTRO, TITLES, ReportData, banners, meta_lines
from perfmodel.reports.sections import section_notes, section_tables


def _md_cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(no rows)_"
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(_md_cell(c) for c in cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for row in df.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines)


def to_markdown(data: ReportData) -> str:
    out = [f"# Predicted vs measured: {data.run.run_id}", ""]
    for banner in banners(data):
        out += [f"> **Warning:** {_md_cell(banner)}", ""]
    out += [f"- **{k}**: {_md_cell(v)}" for k, v in meta_lines(data.run)]
    if data.baseline is not None:
        out.append(f"- **baseline**: {data.baseline.run_id}")
    out += ["", "Figures are in the HTML version (`perfmodel report --format html`).", ""]
    tables = section_tables(data)
    notes = section_notes(data)
    for key in SECTION_INTRO:
        if key == "comparison" and data.comparison is None:
            continue
        out += [f"## {TITLES[key]}", "", SECTION_INTRO[key], ""]
        out += [line for n in notes.get(key, []) for line in (f"_{_md_cell(n)}_", "")]
        if key == "headlines":
            out += [f"- {h}" for h in data.headlines] + [""]
            continue
        for caption, df in tables.get(key, []):
            if caption:
                out += [f"**{caption}**", ""]
            out += [markdown_table(df), ""]
    return "\n".join(out)
