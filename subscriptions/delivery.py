"""Webhook delivery of outbox events to incoming subscriptions (to be written)."""


def wake() -> None:
    pass
