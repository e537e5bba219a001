"""Speed and memory benchmarks: each script prints a table with ratios and writes JSON to results/."""
