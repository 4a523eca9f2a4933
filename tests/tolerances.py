"""Named tolerances: money, ratios and times."""

# Absolute slack for amounts that are exact in binary floating point.
MONEY_ATOL = 1e-6
# Relative slack for amounts reached by different orders of summation
# (incremental updates against a full recompute).
MONEY_RTOL = 1e-9
# The quarterly report's figures are billions built from stated amounts: one unit of
# currency is far below the precision of the table.
REPORT_ATOL = 1.0
# Half a unit in the last place of a ratio stated to three decimals (1.034).
STATED_RATIO_ATOL = 5e-4
# Event times in seconds: a microsecond.
TIME_ATOL = 1e-6
# The reverse stress test's shock multiplier k*: to 1e-6 relative, as it is reported.
MULTIPLIER_RTOL = 1e-6
# Shares and indices (0 to 1) reached by different orders of summation.
SHARE_ATOL = 1e-9
