"""Scoring and comparing: metrics, classical baselines, synthetic scenes."""
