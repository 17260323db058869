"""``make bench``: throughput, latency and memory, each stated against a baseline from the same run."""
