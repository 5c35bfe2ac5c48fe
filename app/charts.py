"""Pure `DataFrame -> plotly Figure` builders for the pages.

The builders themselves live in `perfmodel/reports/figures.py`, because the report builder
(`perfmodel/reports/reporting.py`) draws the same figures and imports only run app -> perfmodel, never the reverse. This
module is the dashboard's one door to them, so that pages import charts from `app.charts` alone.
"""

from perfmodel.reports.figures import (batching_figure, compare_figure, constraints_figure, model_terms_figure,
                                       roofline_figure, stages_figure, stalls_figure, terms_figure)

__all__ = ["stages_figure", "terms_figure", "model_terms_figure", "constraints_figure", "stalls_figure",
           "roofline_figure", "batching_figure", "compare_figure"]
