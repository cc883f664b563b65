"""Verbs over every object kind: events, info, filters, per-item reports, system df and prune."""
