"""Paired data sets: images (or audio clips, or videos) with captions, plus what was skipped and why."""

from core.data.base import DATASETS, MEDIA, PairedDataset, Sample, Skipped, available_datasets, load_dataset
from core.data.images import load_rgb, thumbnail
from core.data.media import MediaError, decode_media, media_thumbnail

__all__ = ["PairedDataset", "Sample", "Skipped", "load_dataset", "available_datasets", "DATASETS", "MEDIA", "load_rgb",
           "thumbnail", "MediaError", "decode_media", "media_thumbnail"]
