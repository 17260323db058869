"""``make bench``: throughput, latency and memory, each against a baseline from the same run."""
