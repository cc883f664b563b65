"""The engine: containers, images, networks and volumes behind one protocol.

Frontends (the CLI, the HTTP API, the compose planner) talk to an ``Engine``;
``capsa.engine.local.LocalEngine`` runs it in-process and ``capsa.client`` (later)
speaks the same protocol over the API socket.
"""
