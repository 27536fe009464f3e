"""Alignment vs scale: mutual kNN on nested random subsets of growing size, with chance and a shuffled-pairs null."""

import plotly.graph_objects as go
import streamlit as st

from dashboard import common

st.title("Alignment vs scale")
run = common.current_run()
if run is None:
    st.stop()

key = common.store_key()
points = common.curve(run["run_id"], *key)
ks = sorted(int(k) for k in points.k.unique())
k = st.radio("Neighbours k", ks, index=common.linked_index("k", ks, len(ks) - 1), horizontal=True,
             format_func=lambda v: f"k = {v}")
st.query_params["k"] = str(k)
line = points[points.k == k]
names = run["layer_names"]

st.caption(
    f"{run['model_a']} × {run['model_b']} on {run['dataset']} ({run['n']} pairs). Each point below the full set is the "
    f"mean over {int(line.draws.max())} random nested subsets; bars are 95% bootstrap intervals (over subsets and queries). "
    "The layer pair is chosen on the full set and held fixed."
)

hover = ("n = %{x}<br>%{meta}: %{y:.4f}<br>95% CI [%{customdata[0]:.4f}, %{customdata[1]:.4f}]<extra></extra>")
figure = go.Figure()
figure.add_trace(go.Scatter(
    x=line.gallery_size, y=line.score, mode="lines+markers", name="mutual kNN", meta="mutual kNN",
    error_y=dict(type="data", symmetric=False, array=line.ci_high - line.score, arrayminus=line.score - line.ci_low),
    customdata=line[["ci_low", "ci_high"]].to_numpy(), hovertemplate=hover, line=dict(width=3)))
figure.add_trace(go.Scatter(
    x=line.gallery_size, y=line.shuffled, mode="lines+markers", name="shuffled pairs (null)", meta="shuffled pairs",
    error_y=dict(type="data", symmetric=False, array=line.shuffled_high - line.shuffled,
                 arrayminus=line.shuffled - line.shuffled_low),
    customdata=line[["shuffled_low", "shuffled_high"]].to_numpy(), hovertemplate=hover, line=dict(dash="dot")))
figure.add_trace(go.Scatter(
    x=line.gallery_size, y=line.chance, mode="lines", name="chance k/(n−1)", line=dict(dash="dash", color="grey"),
    hovertemplate="n = %{x}<br>chance: %{y:.4f}<extra></extra>"))
figure.update_xaxes(type="log", title="number of pairs n (log scale)", tickvals=list(line.gallery_size),
                    ticktext=[f"{int(v):,}" for v in line.gallery_size])
figure.update_yaxes(title=f"mutual kNN score (k = {k})", rangemode="tozero")
figure.update_layout(height=460, hovermode="x unified", legend=dict(orientation="h", y=1.08), margin=dict(t=40))
st.plotly_chart(figure, width="stretch")

with st.expander("The numbers"):
    st.dataframe(line.drop(columns=["k"]), hide_index=True, width="stretch")

st.subheader("Which layers align best")
scores = common.layer_scores(run["run_id"], k, *key)
matrix = scores.pivot(index="layer_a", columns="layer_b", values="score")
best = scores.loc[scores.score.idxmax()]
heat = go.Figure(go.Heatmap(
    z=matrix.to_numpy(), x=[names["b"][j] for j in matrix.columns], y=[names["a"][i] for i in matrix.index],
    colorscale="Viridis", colorbar=dict(title="score"),
    hovertemplate=f"{run['model_a']} %{{y}} × {run['model_b']} %{{x}}<br>mutual kNN: %{{z:.4f}}<extra></extra>"))
heat.update_layout(height=420, xaxis_title=f"{run['model_b']} layer", yaxis_title=f"{run['model_a']} layer", margin=dict(t=20))
st.plotly_chart(heat, width="stretch")
st.caption(f"Best pair at k = {k} on the full set: {names['a'][int(best.layer_a)]} × {names['b'][int(best.layer_b)]} "
           f"({best.score:.4f}).")
