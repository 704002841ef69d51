"""Hooks the bottom layer offers the apps above it.

Every hook in this project is a Django signal that a service sends explicitly (never a model's save), defined in
the `signals.py` of the layer that sends it and connected in the `AppConfig.ready()` of the app that listens, so
a lower layer can notify a higher one without importing it (ARCHITECTURE.md, "Layers").
"""

from django.dispatch import Signal

# Sent by `federation_site.node.refresh_state`: before each web request (NodeStateMiddleware), each CLI command
# and every 2 s (beat). Receivers bring the database in line with the repository's files, cheaply when nothing
# changed. Arguments: `progress`, a callable taking one line of text for long imports, or None. Receivers run in
# INSTALLED_APPS order: tracker (the JSONL files), then remotes (the remotes of federation.config.json).
node_state_check = Signal()
