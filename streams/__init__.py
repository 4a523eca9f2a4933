"""The service around :mod:`risk`: Kafka, HTTP, metrics and the command line."""

import os

# The worker is one event loop next to a broker on few cores: BLAS threads that spin
# between matrix products take the cores the broker and the feed need, and lengthen
# the tail of the latency. Set before numpy loads; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
