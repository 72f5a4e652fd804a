# bench/: the benchmark (issue 5).
