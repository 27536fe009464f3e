"""Landing page: what is measured, and the headline numbers of the current run."""

import streamlit as st

from dashboard import common

st.title("Do vision and language models see the world the same way?")
st.markdown(
    """
This dashboard measures **cross-modal representational alignment** between an image model and a
text model on paired data. For every image-caption pair we find the *k* nearest neighbours of the
image among the other images (in the vision model's features) and of the caption among the other
captions (in the language model's features). **Mutual kNN** is the average fraction of neighbours
the two lists share: 1 when the spaces agree perfectly, about *k / (n − 1)* by chance. Runs on
sound clips or videos with captions work the same way, with an audio or video model in place of
the vision model.

The *Platonic Representation Hypothesis* (Huh et al., 2024) reads high alignment as convergence
toward one shared representation. *Back into Plato's Cave* (Koepke et al., 2026) shows the score
falls steeply as the set grows: what remains is coarse agreement on categories, rarely on items.
Here you can watch that happen on real data.
"""
)

run = common.current_run()
if run is not None:
    points = common.curve(run["run_id"], *common.store_key())
    full = points[points.gallery_size == points.gallery_size.max()]
    st.subheader(f"Current run: {run['model_a']} × {run['model_b']} on {run['dataset']} ({run['n']} pairs)")
    cols = st.columns(len(full))
    for col, row in zip(cols, full.itertuples()):
        col.metric(f"mutual kNN, k = {row.k}", f"{row.score:.3f}",
                   delta=f"{row.score / row.chance:.1f}× chance ({row.chance:.4f})", delta_color="off")
    if len(run["skipped"]):
        skipped = ", ".join(f"{r.count} {r.reason}" for r in run["skipped"].itertuples())
        st.caption(f"Skipped while loading: {common.escape_md(skipped)}.")
    st.page_link("dashboard/pages/scale.py", label="Alignment vs scale: how the score falls as the set grows", icon="📉")
    st.page_link("dashboard/pages/neighbours.py", label="Neighbours of one sample: what each model considers similar", icon="🧭")
