"""Collectors: one module per item kind."""
