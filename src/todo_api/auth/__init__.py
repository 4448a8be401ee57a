"""Verified identity: bearer tokens and the keys that sign them. Nothing here knows HTTP routes."""
