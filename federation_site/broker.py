"""kombu's filesystem transport, with messages written atomically.

kombu writes a message file in place (`open(name, "wb")`, then write) while a worker may already be listing the
folder: the worker moves the file away and reads it before the write lands, gets an empty file, and dies on the
JSONDecodeError ("Unrecoverable error"). Seen in our own tests once events made tasks frequent. Here a message is
written under a name the worker ignores and renamed into place, so a worker only ever sees whole messages.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".partial-{name}.tmp")  # not "<queue>.msg": never read
        try:
            with open(partial, "wb") as fh:
                fh.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    """Make `filesystem://` URLs use this transport."""
    TRANSPORT_ALIASES["filesystem"] = "federation_site.broker:Transport"
