"""The false-match bound measured on the faces this hall serves, for a registry too small to
measure its own (recognition/calibration.prior_curve).

EAST_ASIAN_FMR_UPPER[i]: the 95 % upper bound of FMR at calibration.GRID[i] (0.200, 0.205, ...
0.900), measured by `python -m bench.prior ../shared/faces/calibration/east_asian` (LFW
deep-funneled photos of East-Asian people, every photo through the enrolment gate, every pair
of different people; the registry's own procedure). Regenerate with that command.
"""
# 299 of 311 photos of 45 people, 43294 pairs; measured 2026-12-02.
# Thresholds it gives (target FPIR 0.5 %): 0.425 for 1 citizen, 0.37 for 10, 0.355 for 50,
# 0.30 for 1,000, where the LFW fit alone gave 0.50, 0.50, 0.475 and 0.395.
EAST_ASIAN_FMR_UPPER = (
    1.72e-07, 2.09e-07, 2.54e-07, 3.08e-07, 3.73e-07, 4.53e-07, 5.5e-07, 6.67e-07,
    8.09e-07, 9.82e-07, 1.19e-06, 1.45e-06, 1.75e-06, 2.13e-06, 2.58e-06, 3.13e-06,
    3.8e-06, 4.61e-06, 5.6e-06, 6.79e-06, 8.24e-06, 1e-05, 1.21e-05, 1.47e-05,
    1.79e-05, 2.17e-05, 2.63e-05, 3.19e-05, 3.87e-05, 4.7e-05, 5.7e-05, 6.92e-05,
    0.000145, 0.000274, 0.000449, 0.000553, 0.000671, 0.000887, 0.0011, 0.00136,
    0.00172, 0.00226, 0.00274, 0.00333, 0.00404, 0.0049, 0.00595, 0.00731,
    0.00887, 0.011, 0.0135, 0.0168, 0.0203, 0.024, 0.0283, 0.0332,
    0.0387, 0.0453, 0.0527, 0.0602, 0.0689, 0.079, 0.0901, 0.102,
    0.116, 0.13, 0.145, 0.162, 0.18, 0.198, 0.217, 0.237,
    0.257, 0.278, 0.3, 0.322, 0.343, 0.365, 0.388, 0.41,
    0.433, 0.455, 0.478, 0.501, 0.524, 0.546, 0.569, 0.59,
    0.612, 0.632, 0.653, 0.672, 0.69, 0.708, 0.726, 0.743,
    0.759, 0.775, 0.791, 0.807, 0.821, 0.836, 0.849, 0.862,
    0.874, 0.886, 0.899, 0.909, 0.918, 0.927, 0.935, 0.942,
    0.95, 0.955, 0.961, 0.966, 0.97, 0.975, 0.979, 0.981,
    0.984, 0.987, 0.989, 0.992, 0.993, 0.995, 0.995, 0.996,
    0.997, 0.998, 0.998, 0.999, 0.999, 0.999, 0.999, 1.0,
    1.0, 1.0, 1.0, 1.0, 1.0,
)
