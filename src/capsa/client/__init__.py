"""capsa as a client of a running ``capsa system service``: ``remote.RemoteEngine``."""
