"""Paired data sets: images with captions, plus what was skipped and why."""

from core.data.base import PairedDataset, Sample, Skipped, load_dataset, DATASETS
from core.data.images import load_rgb, thumbnail

__all__ = ["PairedDataset", "Sample", "Skipped", "load_dataset", "DATASETS", "load_rgb", "thumbnail"]
