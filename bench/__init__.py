"""Benchmarks: latency and throughput over a real LiveKit server (`python -m bench --help`)."""
