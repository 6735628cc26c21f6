"""The versioned stores (configurations, instructions), model memory, their cache and listener."""
