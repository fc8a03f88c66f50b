"""The published language: event contracts, one module per publishing service.

Each module registers marshmallow schemas with ``pamong.events.contracts.contract``.
``published.json`` is the lock the contract test compares against (``pamong contracts lock``).
"""
