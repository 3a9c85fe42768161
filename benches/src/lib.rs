//! Benchmark fixtures shared by the benches in `benches/benches/`.
