"""accelsim: a discrete-event performance model of inference serving on hypothetical chips."""

__version__ = "0.1.0"
