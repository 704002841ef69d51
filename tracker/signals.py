"""Hooks the tracker offers the layers above it (see federation_site/signals.py for the convention)."""

from django.dispatch import Signal

# Sent by a tracker write that may have changed an entity's cross-repo references (its content's [[org/repo#id]]
# or its remote_relationships), inside or after the write's transaction. No arguments. Receivers that act on
# the network must wait for the commit (`transaction.on_commit`). subscriptions: re-sends its auto-subscriptions.
references_changed = Signal()
