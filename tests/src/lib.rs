//! Test harnesses shared by weir's integration tests, fixtures and benchmarks.
