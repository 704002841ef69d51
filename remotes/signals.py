"""Hooks the remotes layer offers the layers above it (see federation_site/signals.py for the convention)."""

from django.dispatch import Signal

# Sent by `remotes.services.remotes_reconcile` after it applied a changed federation.config.json (a trust level,
# permissions, an endpoint: through the CLI, the admin, the management API or an edit of the file), after the
# commit. Arguments: `urls`, the identities of the remotes declared in the new config. subscriptions: our
# outgoing subscriptions to them that failed are retried at once (issue 14).
remotes_changed = Signal()
