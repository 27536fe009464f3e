"""Paired data sets: images with captions, plus what was skipped and why."""

from core.data.base import DATASETS, PairedDataset, Sample, Skipped, available_datasets, load_dataset
from core.data.images import load_rgb, thumbnail

__all__ = ["PairedDataset", "Sample", "Skipped", "load_dataset", "available_datasets", "DATASETS", "load_rgb", "thumbnail"]
