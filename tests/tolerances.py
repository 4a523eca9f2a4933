"""Named tolerances for money comparisons."""

# Absolute slack for amounts that are exact in binary floating point.
MONEY_ATOL = 1e-6
# Relative slack for amounts reached by different orders of summation
# (incremental updates against a full recompute).
MONEY_RTOL = 1e-9
