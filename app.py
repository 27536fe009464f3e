"""Dashboard entry point: `streamlit run app.py`."""

import streamlit as st

st.set_page_config(page_title="Platoscope: cross-modal alignment", page_icon="🔭", layout="wide")

PAGES = [
    st.Page("dashboard/pages/home.py", title="Overview", icon="🔭", url_path="overview", default=True),
    st.Page("dashboard/pages/scale.py", title="Alignment vs scale", icon="📉", url_path="scale"),
    st.Page("dashboard/pages/neighbours.py", title="Neighbours of one sample", icon="🧭", url_path="neighbours"),
    st.Page("dashboard/pages/models.py", title="Models", icon="🧮", url_path="models"),
]

st.navigation(PAGES).run()
