"""Volumes: the volume service and its records."""
