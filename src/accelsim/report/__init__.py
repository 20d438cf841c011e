"""Terminal rendering of results and explanations."""
