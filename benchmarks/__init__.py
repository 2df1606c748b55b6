"""Development benchmarks: the scenes the defaults are tuned and judged on (never shipped in the plugin)."""
