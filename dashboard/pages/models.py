"""Models: every pair of models run on one data set as a grid, and alignment against language-model quality."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from dashboard import common

st.title("Models")
if common.runs().empty:
    common.current_run()  # offers to compute the demo
    st.stop()

key = common.store_key()
summaries = common.run_summaries(*key)
summaries["data_id"] = summaries.dataset_fingerprint.str[:12]
sets = summaries.drop_duplicates("data_id").set_index("data_id")
set_ids = list(sets.index)
data_id = st.sidebar.selectbox(
    "Data set", set_ids, index=common.linked_index("data", set_ids),
    format_func=lambda d: f"{sets.dataset[d]} · {sets.get('media', {}).get(d, 'image')} · n={sets.n[d]:,}")
rows = summaries[summaries.data_id == data_id]
ks = sorted(int(k) for k in rows.k.unique())
k = st.radio("Neighbours k", ks, index=common.linked_index("k", ks, len(ks) - 1), horizontal=True,
             format_func=lambda v: f"k = {v}")
st.query_params.update({"data": data_id, "k": str(k)})

# the newest run of each model pair at this k (older runs of a pair used other settings)
latest = rows[rows.k == k].sort_values("created_at", ascending=False).drop_duplicates(["model_a", "model_b"])
row_models, col_models = sorted(latest.model_a.unique()), sorted(latest.model_b.unique())
metric = ", ".join(sorted(latest.metric.unique()))
st.caption(f"{metric} at k = {k} on the full set of {sets.n[data_id]:,} pairs of {sets.dataset[data_id]}, for every pair "
           f"of models run on it ({len(latest)} runs; chance is {k / (sets.n[data_id] - 1):.4f}). Each cell is the run's "
           "best layer pair; hover for its 95% interval and the shuffled-pairs null.")

grid = latest.pivot(index="model_a", columns="model_b", values="score").reindex(index=row_models, columns=col_models)
detail = latest.set_index(["model_a", "model_b"])
hover = np.array([[f"{a} × {b}<br>{metric}: {detail.score[a, b]:.4f}<br>95% CI [{detail.ci_low[a, b]:.4f}, "
                   f"{detail.ci_high[a, b]:.4f}]<br>shuffled pairs: {detail.shuffled[a, b]:.4f}" if (a, b) in detail.index
                   else f"{a} × {b}: not run" for b in col_models] for a in row_models])
heat = go.Figure(go.Heatmap(z=grid.to_numpy(), x=col_models, y=row_models, colorscale="Viridis", zmin=0,
                            text=hover, hovertemplate="%{text}<extra></extra>", texttemplate="%{z:.3f}",
                            colorbar=dict(title="score")))
heat.update_layout(height=max(260, 90 + 60 * len(row_models)), xaxis_title="text model (B)",
                   yaxis_title="media model (A)", margin=dict(t=20))
st.plotly_chart(heat, width="stretch")

table = latest[["model_a", "model_b", "score", "ci_low", "ci_high", "shuffled", "chance", "run_id"]].copy()
table["view"] = "/scale?run=" + table.run_id + f"&k={k}"
st.dataframe(table.drop(columns=["run_id"]), hide_index=True, width="stretch",
             column_config={"view": st.column_config.LinkColumn("curve", display_text="alignment vs scale")})

st.subheader("Alignment against language-model quality")
quality = common.model_quality(*key)
measured = quality[quality.model.isin(col_models)]
if measured.empty:
    st.info("None of these text models has a quality measurement yet. The original paper plots alignment against "
            "1 − bits per byte on a text corpus: `python -m core lm-quality --model NAME --corpus FILE` measures a causal "
            "language model and stores it here.")
    st.stop()
coverage = measured.groupby("corpus").model.nunique()
corpora = sorted(coverage.index, key=lambda c: (-coverage[c], c))  # the corpus most of these models were measured on first
corpus = st.selectbox("Corpus", corpora, index=common.linked_index("corpus", corpora)) if len(corpora) > 1 else corpora[0]
if len(corpora) > 1:
    st.query_params["corpus"] = corpus
bpb = measured[measured.corpus == corpus].sort_values("created_at").drop_duplicates("model", keep="last")
points = latest.merge(bpb[["model", "bits_per_byte"]], left_on="model_b", right_on="model")
points["quality"] = 1 - points.bits_per_byte
scatter = go.Figure()
for model_a, group in points.groupby("model_a"):
    group = group.sort_values("quality")
    scatter.add_trace(go.Scatter(
        x=group.quality, y=group.score, mode="lines+markers", name=model_a, text=group.model_b,
        error_y=dict(type="data", symmetric=False, array=group.ci_high - group.score, arrayminus=group.score - group.ci_low),
        hovertemplate="%{text}<br>1 − bits per byte: %{x:.3f}<br>score: %{y:.4f}<extra>" + model_a + "</extra>"))
scatter.update_xaxes(title=f"language performance: 1 − bits per byte on {corpus.rsplit('/', 1)[-1]}")
scatter.update_yaxes(title=f"{metric} (k = {k})", rangemode="tozero")
scatter.update_layout(height=420, legend=dict(title="media model"), margin=dict(t=20))
st.plotly_chart(scatter, width="stretch")
st.caption(f"{len(points)} of {len(latest)} runs have a text model measured on this corpus; one line per media model, "
           "as in the original paper's figure.")
