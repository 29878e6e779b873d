"""Stdlib-only pipelines, so they run on compute nodes that lack daylib's AWS dependencies."""
