"""The Streamlit dashboard (`perfmodel dashboard`): reads runs only through `perfmodel`, never `collectors/`.

streamlit_app.py builds the navigation; app_pages/ holds one thin page per view; data.py has the cached
loaders; charts.py the figure builders (re-exported from perfmodel.figures); widgets.py the shared sidebar.
"""
