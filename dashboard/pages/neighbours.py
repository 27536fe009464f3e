"""Neighbours of one sample: its k nearest neighbours in vision (or audio, or video) space and in text space,
shared ones highlighted."""

import numpy as np
import streamlit as st

from dashboard import common

st.title("Neighbours of one sample")
run = common.current_run()
if run is None:
    st.stop()

key = common.store_key()
table = common.samples(run["run_id"], *key).set_index("idx", drop=False)
ks = sorted(int(c.removeprefix("overlap_k")) for c in table.columns if c.startswith("overlap_k"))
names = run["layer_names"]

k = st.sidebar.radio("Neighbours k", ks, index=common.linked_index("k", ks, len(ks) - 1), format_func=lambda v: f"k = {v}")

if st.session_state.get("sample") not in table.index:  # first visit (or another run): linked sample, else best-aligned
    linked = table.index[table.sample_id == st.query_params.get("sample")]
    st.session_state.sample = int(linked[0]) if len(linked) else int(table[f"overlap_k{max(ks)}"].idxmax())

query = st.sidebar.text_input("Search captions", placeholder="e.g. cat, truck, flower")
matches = table[table.caption.str.contains(query, case=False, regex=False)] if query else table
if matches.empty:
    st.sidebar.warning(f"No caption contains {query!r}.")
    matches = table
options = list(matches.idx)
if st.session_state.sample not in options:
    options = [st.session_state.sample, *options]


def pick_random() -> None:
    st.session_state.sample = int(np.random.default_rng().choice(list(matches.idx)))


st.sidebar.button("🎲 Random sample", on_click=pick_random, width="stretch")
st.sidebar.selectbox(f"Sample ({len(matches)} match)" if query else "Sample", options, key="sample",
                     format_func=lambda i: f"{table.caption[i]}  ·  {table.category[i]}")
idx = int(st.session_state.sample)
sample = table.loc[idx]
st.query_params.update({"sample": sample.sample_id, "k": str(k)})

view = common.sample_view(run["run_id"], idx, k, *key)
la, lb = view["layer_pair"]
shared = len(view["shared"])

media = run.get("media", "image")


def show_media(path: str, thumb: str, full: bool) -> None:
    """An image as itself; a sound as its spectrogram and a player; a video as a player (`full`) or its middle frame."""
    if media == "video" and full:
        st.video(path)
        return
    st.image(path if media == "image" and full else thumb, width="stretch")
    if media == "audio":
        st.audio(path)


left, right = st.columns([1, 3], gap="large")
with left:
    show_media(sample.media_path, sample.thumb_path, full=True)
    st.markdown(f"**{common.escape_md(sample.caption)}**")
    st.caption(f"category: {common.escape_md(sample.category)}")
    side_a = common.space_name(run["modality_a"]).lower()
    st.metric(f"overlap at k = {k}", f"{view['overlap']:.2f}", help=f"|{side_a} neighbours ∩ text neighbours| / k")
    st.caption(f"{shared} of {k} neighbours shared. Chance is {k / (run['n'] - 1):.4f}; the run's mean is {table[f'overlap_k{k}'].mean():.3f}. "
               "The address bar links to this view.")


def neighbour_grid(frame, title: str) -> None:
    st.markdown(f"##### {title}")
    if media == "audio":  # a player needs width: one neighbour per line, spectrogram, player, caption
        for row in frame.itertuples():
            with st.container(border=True):
                thumb, player, text = st.columns([1, 2, 3], vertical_alignment="center")
                thumb.image(row.thumb_path, width="stretch")
                player.audio(row.media_path)
                badge = ":green-badge[shared] " if row.shared else ""
                text.markdown(f"{badge}{common.escape_md(row.caption)}")
                text.caption(f"#{row.rank + 1} · cos {row.similarity:.3f}")
        return
    per_row = 5  # fixed width, so k = 1 shows one thumbnail, not one giant image
    for start in range(0, len(frame), per_row):
        for col, row in zip(st.columns(per_row), frame.iloc[start:start + per_row].itertuples()):
            with col.container(border=True):
                show_media(row.media_path, row.thumb_path, full=False)
                badge = ":green-badge[shared] " if row.shared else ""
                st.markdown(f"{badge}{common.escape_md(row.caption)}")
                st.caption(f"#{row.rank + 1} · cos {row.similarity:.3f}")


with right:
    neighbour_grid(view["a"], f"{common.space_name(run['modality_a'])} space: {run['model_a']} · {names['a'][la]}")
    neighbour_grid(view["b"], f"{common.space_name(run['modality_b'])} space: {run['model_b']} · {names['b'][lb]}")

if shared:
    st.subheader("Captions both models put near this one")
    both = view["a"][view["a"].shared]
    st.markdown("\n".join(f"- {common.escape_md(c)}  ·  {common.escape_md(cat)}" for c, cat in zip(both.caption, both.category)))
else:
    st.caption("The two models share no neighbour of this sample at this k.")
