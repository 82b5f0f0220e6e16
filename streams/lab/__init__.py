"""Lab tools: simulators and benchmarks that score the models offline, never used by a worker."""
