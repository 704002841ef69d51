"""The embedded broker writes each message whole: a worker listing the queue folder never sees a half-written
message (kombu's own filesystem transport writes in place, and a worker reading early died on the empty file)."""

from __future__ import annotations

from kombu import Connection

from federation_site import broker


def test_messages_appear_only_whole_and_are_read_back(tmp_path, monkeypatch):
    broker.install()
    queue = tmp_path / "queue"
    queue.mkdir()
    written: list[str] = []
    real_replace = broker.os.replace

    def replace(src, dst):
        # At the moment a message lands, the folder holds no other file that looks like a message.
        names = [p.name for p in queue.iterdir()]
        written.append(open(src).read())
        assert [n for n in names if n.endswith(".msg")] == []
        assert all(n.startswith(".partial-") for n in names)
        real_replace(src, dst)

    monkeypatch.setattr(broker.os, "replace", replace)
    options = {"data_folder_in": str(queue), "data_folder_out": str(queue), "store_processed": False}
    with Connection("filesystem://localhost/", transport_options=options) as conn:
        assert type(conn.transport).__module__ == "federation_site.broker"
        q = conn.SimpleQueue("jobs")
        q.put({"n": 1})
        message = q.get(timeout=2)
        assert message.payload == {"n": 1}
        message.ack()
        q.close()
    assert len(written) == 1 and '"routing_key": "jobs"' in written[0]
    assert [p.name for p in queue.iterdir()] == []
