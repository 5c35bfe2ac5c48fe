"""The Streamlit dashboard (`perfmodel dashboard`): reads runs only through `perfmodel`, never `collectors/` or
`runstore/`.

streamlit_app.py builds the navigation; app_pages/ holds one thin page per view; data.py has the cached
loaders; charts.py the figure builders (re-exported from perfmodel.reports.figures, coloured by
perfmodel.reports.palette); tables.py the display frames only the dashboard shows; widgets.py the shared sidebar.
"""
