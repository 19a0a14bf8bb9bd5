"""Channels: provider wire formats, one module or package per provider.

Each implements `relay.delivery.Channel` (the send half, which knows no storage) and,
where the provider answers, an inbound half that calls services.
"""
