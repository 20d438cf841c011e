"""SimPy engine: arrivals, routing, batching and chips."""
