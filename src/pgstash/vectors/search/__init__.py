"""What searches a vector table: the call's `SearchOptions`, vector, text and hybrid search, how
a search runs (planning) and MMR re-ranking."""
