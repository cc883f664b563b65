"""Container networking: bridges, veth pairs, IPAM, tc limits (core), nftables and DNS.

Records live in ``types``; ``service.NetworkService`` is the entry point the engine uses.
Nothing is imported here so that the monitor only pays for what it calls.
"""
