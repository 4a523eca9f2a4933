"""Every Kafka client of the service: the only package that imports aiokafka.

``clients`` builds them, ``admin`` creates topics and waits for a broker,
``ingest`` reads the per-message inputs in batches, ``outputs`` writes results,
``views`` exchanges partition views between workers, ``assignor`` hands out
partition numbers, and ``sender`` writes keyed record batches for the tools.
"""
