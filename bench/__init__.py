"""pgstash benchmarks: each workload timed against raw asyncpg doing the same work, interleaved."""
