"""indexer: the experiment engine and worker. No web imports here."""

__version__ = "0.1.0"
