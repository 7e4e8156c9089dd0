"""gluelab dashboard: `gluelab dashboard [--store FILE]`, or `streamlit run dashboard/app.py`."""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

from store import StoreError

VIEWS = Path(__file__).parent / "views"
# (file, title, icon): the order of the navigation
PAGES = (
    ("overview.py", "Overview", ":material/leaderboard:"),
    ("model_selection.py", "Model selection", ":material/target:"),
    ("operations.py", "Line stops", ":material/factory:"),
    ("robustness.py", "Robustness", ":material/blur_on:"),
    ("runtime.py", "Runtime", ":material/timer:"),
    ("part_drilldown.py", "Part drill-down", ":material/zoom_in:"),
    ("failure_browser.py", "Failure browser", ":material/report:"),
    ("line_monitor.py", "Line monitor", ":material/monitor_heart:"),
    ("runs.py", "Runs", ":material/list:"),
)
STORE_PROBLEM = "The results store cannot be used: {error}"

st.set_page_config(page_title="gluelab", page_icon=":material/precision_manufacturing:", layout="wide")
navigation = st.navigation(
    [
        st.Page(VIEWS / file, title=title, icon=icon, default=index == 0)
        for index, (file, title, icon) in enumerate(PAGES)
    ]
)
try:
    navigation.run()
except StoreError as error:
    # Visitors get the one-line reason; the traceback stays in the server's log.
    logging.getLogger("gluelab.dashboard").warning("store problem on %s", navigation.title, exc_info=error)
    st.error(STORE_PROBLEM.format(error=error), icon=":material/database:")
