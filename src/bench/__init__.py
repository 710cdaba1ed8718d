"""Throughput benchmarks of every layer against same-run ceilings (``plait bench``)."""
