"""The Streamlit dashboard: page scripts in `pages/`, shared reads and job helpers in `common`.

The pages live here rather than in a top-level `pages/` folder because Streamlit treats a
`pages/` folder beside app.py as a legacy multipage app until `st.navigation` first runs,
which breaks deep links (`/scale`) opened on a fresh server.
"""
