"""Every data set adapter on small real files: the pairs it yields, many-to-many keys, the rows it
skips and why, and errors that name the file and line."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from dataclasses import replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from core.data import PairedDataset, Sample, available_datasets, load_dataset, load_rgb
from core.data.debian import debian_data
from core.data.webdataset import expand_braces
from tests.conftest import REAL_STAMPS

FROG, TIGER, BANANA, FIRETRUCK = REAL_STAMPS
CORRUPT = b"\xff\xd8\xffthis is not a jpeg"


@pytest.fixture
def write_photo(stamps_root):
    """write_photo(stamp, path): a small real picture (a Tux Paint stamp on white) in the format of path's suffix."""

    def write(stamp: str, path: Path) -> Path:
        image = load_rgb((stamps_root / stamp).with_suffix(".png"))
        image.thumbnail((64, 64))
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        return path

    return write


@pytest.fixture
def http_folder(tmp_path, monkeypatch):
    """(folder, base URL, paths requested) of an HTTP server on 127.0.0.1 serving `folder`; no outside network."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    folder = tmp_path / "www"
    folder.mkdir()
    requested: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}", requested
    server.shutdown()
    server.server_close()


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def reasons(data: PairedDataset) -> dict[str, str]:
    return {s.sample_id: s.reason for s in data.skipped}


# --- the data model ------------------------------------------------------------------------------


def test_keys_default_to_the_image_bytes_and_the_caption_text():
    sample = Sample("a", Path("a.png"), "A cat.", "pets", "f00d")
    assert (sample.media_key, sample.text_key, sample.label) == ("f00d", "A cat.", None)
    assert Sample("b", Path("b.png"), "A dog.", "", "beef", media_key="img-7").media_key == "img-7"


def test_pair_index_maps_each_pair_to_its_unique_image_and_text():
    pairs = [("cat.png", "A cat."), ("cat.png", "A sleeping cat."), ("dog.png", "A cat."), ("fox.png", "A fox.")]
    data = PairedDataset("toy", Path("."), [Sample(f"p{i}", Path(img), cap, "", img) for i, (img, cap) in enumerate(pairs)])
    images, texts = data.unique_media(), data.unique_texts()
    assert [s.media_key for s in images] == ["cat.png", "dog.png", "fox.png"]
    assert [s.caption for s in texts] == ["A cat.", "A sleeping cat.", "A fox."]
    media_index, text_index = data.pair_index()
    assert media_index.dtype == np.int64 and media_index.tolist() == [0, 0, 1, 2] and text_index.tolist() == [0, 1, 0, 2]
    assert [(images[i].media_key, texts[t].caption) for i, t in zip(media_index, text_index)] == pairs


def test_fingerprint_covers_labels_and_keys():
    data = PairedDataset("toy", Path("."), [Sample("a", Path("a.png"), "A cat.", "", "f00d")])
    before = data.fingerprint()
    for changed in (dict(label="cat"), dict(text_key="t1"), dict(media_key="i1")):
        assert PairedDataset("toy", Path("."), [replace(data.samples[0], **changed)]).fingerprint() != before


def test_every_adapter_is_registered():
    assert {"manifest", "image_folder", "coco", "webdataset", "openclipart", "tuxpaint"} <= set(available_datasets())


def test_tuxpaint_labels_are_its_categories(few_stamps):
    data = load_dataset("tuxpaint", root=few_stamps)
    assert all(s.label == s.category and s.label for s in data.samples)


# --- manifest ------------------------------------------------------------------------------------


def test_jsonl_manifest_pairs_relative_and_absolute_paths_and_caption_lists(tmp_path, write_photo):
    write_photo(FROG, tmp_path / "img" / "frog.jpg")
    write_photo(BANANA, tmp_path / "img" / "banana.jpg")
    tiger = write_photo(TIGER, tmp_path / "elsewhere" / "tiger.png")
    manifest = write_jsonl(tmp_path / "captions.jsonl", [
        {"id": "frog", "image": "img/frog.jpg", "caption": "A green frog.", "label": "animal"},
        {"image": str(tiger), "caption": ["A tiger.", "A big striped cat."], "label": "animal"},
        "",
        {"image": "img/frog.jpg", "caption": "A frog on a leaf."},
        {"image": "img/banana.jpg", "caption": "  A green frog.  "},
    ])
    data = load_dataset("manifest", path=manifest)
    assert [s.sample_id for s in data.samples] == ["frog", "captions.jsonl:2#0", "captions.jsonl:2#1",
                                                   "captions.jsonl:4", "captions.jsonl:5"]
    assert data.captions == ["A green frog.", "A tiger.", "A big striped cat.", "A frog on a leaf.", "A green frog."]
    assert [s.label for s in data.samples] == ["animal", "animal", "animal", None, None]
    assert [s.category for s in data.samples] == ["animal", "animal", "animal", "", ""]
    assert data.samples[1].media_path == tiger
    # one image with two rows, one caption on two images: many-to-many through shared keys
    media_index, text_index = data.pair_index()
    assert media_index.tolist() == [0, 1, 1, 0, 2] and text_index.tolist() == [0, 1, 2, 3, 0]
    assert data.samples[0].media_sha256 == hashlib.sha256((tmp_path / "img" / "frog.jpg").read_bytes()).hexdigest()


def test_manifest_skips_bad_rows_and_says_why(tmp_path, write_photo):
    write_photo(FROG, tmp_path / "frog.jpg")
    (tmp_path / "corrupt.jpg").write_bytes(CORRUPT)
    manifest = write_jsonl(tmp_path / "captions.jsonl", [
        {"id": "good", "image": "frog.jpg", "caption": "A frog."},
        {"id": "missing", "image": "nowhere.jpg", "caption": "A ghost."},
        {"id": "blank", "image": "frog.jpg", "caption": "   "},
        {"id": "corrupt", "image": "corrupt.jpg", "caption": "A broken picture."},
        '{"id": "truncated", "image": "frog.jpg", "caption": ',
        {"id": "number", "image": "frog.jpg", "caption": 42},
        {"id": "noimage", "caption": "No picture."},
        '["frog.jpg", "A frog."]',
        {"id": "good", "image": "frog.jpg", "caption": "A frog again."},
    ])
    data = load_dataset("manifest", path=manifest)
    assert [s.sample_id for s in data.samples] == ["good"]
    why = reasons(data)
    assert why["missing"] == "missing image file"
    assert why["blank"] == "empty caption"
    assert why["corrupt"].startswith("unreadable image")
    assert why["captions.jsonl:5"].startswith("malformed row: not valid JSON")
    assert why["number"] == why["noimage"].replace("'image' must be a path or URL", "'caption' must be a string or a list of strings")
    assert why["captions.jsonl:8"] == "malformed row: expected a JSON object, got list"
    assert why["good"] == "duplicate id (first at captions.jsonl line 1)"
    assert {s.path for s in data.skipped if s.sample_id == "missing"} == {str(tmp_path / "nowhere.jpg")}


def test_strict_manifest_stops_at_the_first_bad_row_naming_file_and_line(tmp_path, write_photo):
    write_photo(FROG, tmp_path / "frog.jpg")
    manifest = write_jsonl(tmp_path / "captions.jsonl", [
        {"image": "frog.jpg", "caption": "A frog."},
        {"image": "frog.jpg", "caption": "A frog, again."},
        '{"image": "frog.jpg" "caption": "x"}',
    ])
    with pytest.raises(ValueError, match=r"captions.jsonl line 3: malformed row: not valid JSON .*load without strict"):
        load_dataset("manifest", path=manifest, strict=True)
    write_jsonl(manifest, [{"image": "frog.jpg", "caption": "A frog."}, {"image": "gone.jpg", "caption": "Gone."}])
    with pytest.raises(ValueError, match=r"captions.jsonl line 2: missing image file \(.*gone.jpg\)"):
        load_dataset("manifest", path=manifest, strict=True)


def test_csv_manifest_reads_json_array_captions(tmp_path, write_photo):
    write_photo(TIGER, tmp_path / "tiger.jpg")
    write_photo(BANANA, tmp_path / "banana.png")
    manifest = tmp_path / "pairs.csv"
    manifest.write_text(
        'id,image,caption,label\n'
        't1,tiger.jpg,"[""A tiger."", ""A striped cat.""]",animal\n'
        ',banana.png,"A ripe banana, yellow.",\n'
        'x,banana.png,A banana.,fruit,extra\n'
        'y,banana.png,"[not json",fruit\n'
    )
    data = load_dataset("manifest", path=manifest)
    assert [s.sample_id for s in data.samples] == ["t1#0", "t1#1", "pairs.csv:3"]
    assert data.captions == ["A tiger.", "A striped cat.", "A ripe banana, yellow."]
    assert [s.label for s in data.samples] == ["animal", "animal", None]
    assert reasons(data) == {"x": "malformed row: expected 4 cells",
                             "y": "malformed row: caption is not a valid JSON array (Expecting value)"}


def test_manifest_without_a_caption_column_names_the_file_and_the_columns(tmp_path):
    manifest = tmp_path / "pairs.csv"
    manifest.write_text("image,text\nfrog.jpg,A frog.\n")
    with pytest.raises(ValueError, match=r"pairs.csv: no 'caption' column \(found: image, text\)"):
        load_dataset("manifest", path=manifest)
    with pytest.raises(ValueError, match="unknown manifest format '.txt'"):
        load_dataset("manifest", path=manifest.rename(tmp_path / "pairs.txt"))
    with pytest.raises(FileNotFoundError, match="nothere.jsonl: manifest not found"):
        load_dataset("manifest", path=tmp_path / "nothere.jsonl")


def test_parquet_manifest_with_caption_lists(tmp_path, write_photo):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_photo(FROG, tmp_path / "frog.jpg")
    write_photo(FIRETRUCK, tmp_path / "truck.jpg")
    table = pa.table({"image": ["frog.jpg", "truck.jpg"], "caption": [["A frog.", "A green frog."], ["A fire truck."]],
                      "label": ["animal", None]})
    pq.write_table(table, tmp_path / "pairs.parquet")
    data = load_dataset("manifest", path=tmp_path / "pairs.parquet")
    assert [s.sample_id for s in data.samples] == ["pairs.parquet:1#0", "pairs.parquet:1#1", "pairs.parquet:2"]
    assert data.captions == ["A frog.", "A green frog.", "A fire truck."]
    assert [s.label for s in data.samples] == ["animal", "animal", None]
    assert data.pair_index()[0].tolist() == [0, 0, 1]


def test_manifest_urls_are_fetched_once_into_the_cache_and_404s_skipped(tmp_path, write_photo, http_folder):
    www, base, requested = http_folder
    write_photo(FROG, www / "frog.jpg")
    write_photo(TIGER, www / "tiger.png")
    manifest = write_jsonl(tmp_path / "remote.jsonl", [
        {"id": "frog", "image": f"{base}/frog.jpg", "caption": "A frog."},
        {"id": "tiger", "image": f"{base}/tiger.png", "caption": ["A tiger.", "A big cat."]},
        {"id": "lost", "image": f"{base}/lost.jpg", "caption": "Nothing here."},
    ])
    cache = tmp_path / "cache"
    data = load_dataset("manifest", path=manifest, cache=cache)
    assert [s.sample_id for s in data.samples] == ["frog", "tiger#0", "tiger#1"]
    frog_url = f"{base}/frog.jpg"
    assert data.samples[0].media_path == cache / "downloads" / hashlib.sha256(frog_url.encode()).hexdigest()
    assert data.samples[0].media_path.read_bytes() == (www / "frog.jpg").read_bytes()
    assert reasons(data) == {"lost": "download failed (HTTP Error 404: File not found)"}
    assert sorted(requested) == ["/frog.jpg", "/lost.jpg", "/tiger.png"]
    again = load_dataset("manifest", path=manifest, cache=cache)
    assert again.fingerprint() == data.fingerprint()
    assert sorted(requested) == ["/frog.jpg", "/lost.jpg", "/lost.jpg", "/tiger.png"], "only the failure is retried"


def test_limit_spreads_over_the_rows_and_replaces_bad_images(tmp_path, write_photo):
    good = write_photo(FROG, tmp_path / "frog.jpg")
    (tmp_path / "corrupt.jpg").write_bytes(CORRUPT)
    rows = [{"id": f"r{i:02d}", "image": "corrupt.jpg" if i % 5 == 0 else good.name, "caption": f"Frog number {i}."}
            for i in range(40)]
    manifest = write_jsonl(tmp_path / "many.jsonl", rows)
    data = load_dataset("manifest", path=manifest, limit=10)
    ids = [s.sample_id for s in data.samples]
    assert len(ids) == 10 and ids == sorted(ids) and ids[0] < "r10" and ids[-1] >= "r30"
    assert all(s.media_path == good for s in data.samples)
    assert 0 < len(data.skipped) <= 4, "only the rows tried are checked, not all 40"
    with pytest.raises(ValueError, match="limit must be positive"):
        load_dataset("manifest", path=manifest, limit=0)


def test_a_manifest_with_no_usable_pair_says_why(tmp_path):
    manifest = write_jsonl(tmp_path / "empty.jsonl", [{"image": "a.jpg", "caption": ""}, {"image": "b.jpg", "caption": "B."}])
    with pytest.raises(ValueError, match="no usable image-caption pair for manifest .*1 empty caption, 1 missing image file"):
        load_dataset("manifest", path=manifest)


# --- image folder --------------------------------------------------------------------------------


def test_image_folder_pairs_every_caption_line_with_its_image(tmp_path, write_photo):
    root = tmp_path / "photos"
    write_photo(FROG, root / "animals" / "frog.jpg")
    (root / "animals" / "frog.txt").write_text("A frog.\n\n  A green frog on a leaf.  \n")
    write_photo(TIGER, root / "animals" / "cats" / "tiger.png")
    (root / "animals" / "cats" / "tiger.txt").write_text("A tiger.\n")
    write_photo(BANANA, root / "banana.webp")
    (root / "banana.txt").write_text("A banana.")
    write_photo(FROG, root / "bad" / "uncaptioned.jpg")
    (root / "bad" / "orphan.txt").write_text("No picture.\n")
    write_photo(FROG, root / "bad" / "blank.jpg")
    (root / "bad" / "blank.txt").write_text("  \n\n")
    (root / "bad" / "corrupt.jpg").write_bytes(CORRUPT)
    (root / "bad" / "corrupt.txt").write_text("A broken picture.\n")
    data = load_dataset("image_folder", root=root)
    assert [s.sample_id for s in data.samples] == ["animals/cats/tiger", "animals/frog#0", "animals/frog#2", "banana"]
    assert data.captions == ["A tiger.", "A frog.", "A green frog on a leaf.", "A banana."]
    assert [s.label for s in data.samples] == ["animals/cats", "animals", "animals", None]
    assert data.pair_index()[0].tolist() == [0, 1, 1, 2]
    assert reasons(data) == {"bad/uncaptioned": "no caption file", "bad/orphan": "no image file",
                             "bad/blank": "empty caption", "bad/corrupt": reasons(data)["bad/corrupt"]}
    assert reasons(data)["bad/corrupt"].startswith("unreadable image")
    assert len(load_dataset("image_folder", root=root, limit=2)) == 2


# --- COCO ----------------------------------------------------------------------------------------


def coco_file(path: Path, images: list, annotations: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"info": {}, "images": images, "annotations": annotations}, indent=1))
    return path


def test_coco_gives_one_pair_per_caption_five_per_image(tmp_path, write_photo):
    images_dir = tmp_path / "val2017"
    write_photo(FROG, images_dir / "000000000001.jpg")
    write_photo(TIGER, images_dir / "000000000002.jpg")
    frog = ["A frog.", "A green frog.", "A frog sitting.", "An amphibian.", "A small green animal."]
    tiger = ["A tiger.", "A big cat.", "A striped cat.", "A wild animal.", "An orange tiger."]
    annotations = [{"id": 100 + i, "image_id": image_id, "caption": caption}
                   for i, (image_id, caption) in enumerate(x for pair in zip([(1, c) for c in frog], [(2, c) for c in tiger]) for x in pair)]
    annotations += [{"id": 999, "image_id": 77, "caption": "An image that is not listed."},
                    {"id": 998, "image_id": 3, "caption": "A missing file."}, {"id": 997, "caption": None}]
    images = [{"id": 1, "file_name": "000000000001.jpg"}, {"id": 2, "file_name": "000000000002.jpg"},
              {"id": 3, "file_name": "000000000003.jpg"}, {"id": 4}]
    path = coco_file(tmp_path / "annotations" / "captions_val2017.json", images, annotations)
    data = load_dataset("coco", annotations=path, images_dir=images_dir)
    assert len(data) == 10
    assert [s.sample_id for s in data.samples[:6]] == [f"000000000001.jpg#{k}" for k in range(5)] + ["000000000002.jpg#0"]
    assert data.captions == frog + tiger
    media_index, text_index = data.pair_index()
    assert media_index.tolist() == [0] * 5 + [1] * 5 and text_index.tolist() == list(range(10))
    assert reasons(data) == {"images[3]": "malformed image entry: needs 'id' and 'file_name'",
                             "annotations[10]": "caption of an unknown image id",
                             "annotations[12]": "malformed annotation: needs 'image_id' and a string 'caption'",
                             "000000000003.jpg": "missing image file"}
    assert len(load_dataset("coco", annotations=path, images_dir=images_dir, limit=4)) == 4


def test_coco_images_default_to_the_json_folder_and_bad_json_names_the_line(tmp_path, write_photo):
    write_photo(FROG, tmp_path / "frog.jpg")
    path = coco_file(tmp_path / "captions.json", [{"id": "f", "file_name": "frog.jpg"}],
                     [{"image_id": "f", "caption": "A frog."}])
    assert load_dataset("coco", annotations=path).samples[0].media_path == tmp_path / "frog.jpg"
    path.write_text('{"images": [\n  {"id": 1, "file_name": "frog.jpg"}\n  {"id": 2}\n]}')
    with pytest.raises(ValueError, match=r"captions.json line 3 column 3: not valid JSON"):
        load_dataset("coco", annotations=path)
    path.write_text('{"images": []}')
    with pytest.raises(ValueError, match="'images' and 'annotations' lists"):
        load_dataset("coco", annotations=path)


# --- WebDataset ----------------------------------------------------------------------------------


def write_shard(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def shards(tmp_path, write_photo) -> Path:
    """Two shards in `tmp_path/shards`: jpg+txt, jpg+json caption, png+json text list, .cls labels, bad keys."""
    photo = {name: write_photo(stamp, tmp_path / "photos" / name).read_bytes()
             for name, stamp in [("frog.jpg", FROG), ("tiger.png", TIGER), ("banana.jpg", BANANA)]}
    write_shard(tmp_path / "shards" / "shard-000.tar", {
        "000001.jpg": photo["frog.jpg"], "000001.txt": b"A green frog.",
        "000002.jpg": photo["banana.jpg"], "000002.json": json.dumps({"caption": "A banana.", "url": "x"}).encode(),
        "000003.png": photo["tiger.png"], "000003.json": json.dumps({"text": ["A tiger.", "A big cat."]}).encode(),
        "000003.cls": b"7\n",
        "000004.jpg": photo["frog.jpg"], "000004.json": b'{"caption": ',
        "000005.jpg": photo["frog.jpg"],
        "000006.txt": b"A caption without its picture.",
    })
    write_shard(tmp_path / "shards" / "shard-001.tar", {
        "./part/000007.jpeg": photo["banana.jpg"], "./part/000007.txt": b"A green frog.",
        "part/000008.jpg": CORRUPT, "part/000008.txt": b"A broken picture.",
    })
    return tmp_path / "shards"


def test_webdataset_groups_tar_members_by_key(shards, tmp_path):
    cache = tmp_path / "cache"
    data = load_dataset("webdataset", shards=str(shards / "shard-{000..001}.tar"), cache=cache)
    assert [s.sample_id for s in data.samples] == ["shard-000.tar/000001", "shard-000.tar/000002", "shard-000.tar/000003#0",
                                                   "shard-000.tar/000003#1", "shard-001.tar/part/000007"]
    assert data.captions == ["A green frog.", "A banana.", "A tiger.", "A big cat.", "A green frog."]
    assert [s.label for s in data.samples] == [None, None, "7", "7", None]
    why = reasons(data)
    assert why["shard-000.tar/000004"].startswith("malformed .json")
    assert why["shard-000.tar/000005"] == "no caption (.txt, or 'caption'/'text' in .json)"
    assert why["shard-000.tar/000006"] == "no image file"
    assert why["shard-001.tar/part/000008"].startswith("unreadable image")
    # images are plain files in the cache, and the same caption on two images shares its text key
    shard_sha = hashlib.sha256((shards / "shard-000.tar").read_bytes()).hexdigest()
    assert data.samples[0].media_path.parent == cache / "webdataset" / f"{shard_sha}-image"
    assert data.samples[0].media_sha256 == hashlib.sha256((tmp_path / "photos" / "frog.jpg").read_bytes()).hexdigest()
    assert data.pair_index()[1].tolist() == [0, 1, 2, 3, 0]
    index = cache / "webdataset" / f"{shard_sha}-image" / "index.json"
    extracted_at = index.stat().st_mtime_ns
    again = load_dataset("webdataset", shards=[str(shards / "shard-*.tar")], cache=cache)
    assert again.fingerprint() == data.fingerprint() and index.stat().st_mtime_ns == extracted_at


def test_webdataset_reads_remote_shards_through_the_cache(shards, tmp_path, http_folder):
    www, base, requested = http_folder
    (www / "shard-000.tar").write_bytes((shards / "shard-000.tar").read_bytes())
    data = load_dataset("webdataset", shards=f"{base}/shard-{{000..000}}.tar", cache=tmp_path / "cache", limit=2)
    assert [s.sample_id for s in data.samples] == ["shard-000.tar/000001", "shard-000.tar/000003#0"]
    assert requested == ["/shard-000.tar"]
    with pytest.raises(ValueError, match=r"shard-009.tar: download failed \(HTTP Error 404"):
        load_dataset("webdataset", shards=f"{base}/shard-009.tar", cache=tmp_path / "cache")


def test_shard_lists_expand_like_webdataset(tmp_path):
    assert expand_braces("s-{000..002}.tar") == ["s-000.tar", "s-001.tar", "s-002.tar"]
    assert expand_braces("{a,b}/s-{8..10}.tar") == ["a/s-8.tar", "a/s-9.tar", "a/s-10.tar", "b/s-8.tar", "b/s-9.tar", "b/s-10.tar"]
    assert expand_braces("plain{x}.tar") == ["plain{x}.tar"]
    with pytest.raises(FileNotFoundError, match=r"nothing-\*.tar: no shard matches"):
        load_dataset("webdataset", shards=str(tmp_path / "nothing-*.tar"), cache=tmp_path / "cache")
    (tmp_path / "broken.tar").write_bytes(b"not a tar at all" * 40)
    with pytest.raises(ValueError, match="broken.tar: not a readable tar shard"):
        load_dataset("webdataset", shards=str(tmp_path / "broken.tar"), cache=tmp_path / "cache")


# --- Open Clip Art -------------------------------------------------------------------------------


def clipart_svg(title: str, description: str = "") -> str:
    """An SVG with the RDF metadata block that the Open Clip Art files carry."""
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:cc="http://web.resource.org/cc/"
     xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <metadata><rdf:RDF><cc:Work rdf:about="">
    <dc:title>{title}</dc:title><dc:description>{description}</dc:description>
    <dc:subject><rdf:Bag><rdf:li>clip</rdf:li></rdf:Bag></dc:subject>
    <dc:creator><cc:Agent><dc:title>Somebody</dc:title></cc:Agent></dc:creator>
  </cc:Work></rdf:RDF></metadata>
</svg>"""


def test_openclipart_captions_come_from_the_svg_twins(tmp_path, write_photo):
    root = tmp_path / "openclipart"
    entries = {"animals/cat_01": (FROG, clipart_svg("cat", "A  sleeping\n cat")),
               "animals/cat_02": (TIGER, clipart_svg("cat")),
               "signs/stop_01": (FIRETRUCK, clipart_svg("stop", "stop")),
               "signs/untitled": (BANANA, clipart_svg("")),
               "signs/broken": (BANANA, "<svg><metadata>"),
               "signs/no_twin": (BANANA, None)}
    for name, (stamp, svg) in entries.items():
        write_photo(stamp, root / "png" / f"{name}.png")
        if svg is not None:
            (root / "svg" / name).parent.mkdir(parents=True, exist_ok=True)
            (root / "svg" / f"{name}.svg").write_text(svg)
    data = load_dataset("openclipart", root=root)
    assert [s.sample_id for s in data.samples] == ["animals/cat_01#0", "animals/cat_01#1", "animals/cat_02", "signs/stop_01"]
    assert data.captions == ["cat", "A sleeping cat", "cat", "stop"]
    assert [s.category for s in data.samples] == ["animals", "animals", "animals", "signs"]
    assert data.pair_index()[1].tolist() == [0, 1, 0, 2], "a repeated title is one text shown with two images"
    why = reasons(data)
    assert why["signs/untitled"] == "empty caption" and why["signs/no_twin"] == "no SVG twin with the metadata"
    assert why["signs/broken"].startswith("unreadable SVG")


def test_real_openclipart_package_is_many_to_many():
    if not Path("/usr/share/openclipart/png").is_dir() or not Path("/usr/share/openclipart/svg").is_dir():
        pytest.skip("Debian packages openclipart-png and openclipart-svg are not installed")
    data = load_dataset("openclipart", limit=400)
    assert len(data) == 400
    assert len({s.category.split("/")[0] for s in data.samples}) >= 15
    media_index, text_index = data.pair_index()
    assert text_index.max() + 1 < 0.9 * len(data), "titles repeat across images"
    assert all(s.caption and s.label == s.category for s in data.samples)


# --- Debian packages -----------------------------------------------------------------------------


def test_a_package_that_is_not_installed_is_read_from_the_cache(tmp_path):
    extracted = tmp_path / "debian" / "no-such-package" / "usr/share/no-such-package"
    extracted.mkdir(parents=True)
    (extracted / "data.txt").write_text("x")
    assert debian_data("no-such-package", "usr/share/no-such-package", tmp_path) == extracted
