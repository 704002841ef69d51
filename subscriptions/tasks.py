"""Celery tasks: each loads its row and calls a service; all are safe to run twice."""

from federation_site.celery import app  # noqa: F401

# --- webhook delivery (the watched node) ---------------------------------------------------------------------


# --- auto-subscribe and repairs (the watching node) ----------------------------------------------------------
