# tests/bench: benchmarks
