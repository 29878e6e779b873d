"""Chaos suite for issue 9: faults injected from outside the product (an HTTP fault proxy in
front of the emulator, kill -9 storms, a skewed clock in one monitor process), figures
counted from what the steps themselves wrote. ``python -m bench.chaos --help``."""
