"""Datasets: manifests, feature extraction, features on disk, the synthetic corpus."""
