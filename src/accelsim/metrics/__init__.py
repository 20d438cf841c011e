"""Records to summaries: the result document."""
