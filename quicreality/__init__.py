"""quicreality."""
