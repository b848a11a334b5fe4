"""autorenew: recurring billing for a hosting and domain provider."""

__version__ = "0.1.0"
