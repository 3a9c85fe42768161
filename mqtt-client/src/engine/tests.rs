//! Deterministic engine tests live in `tests/`; these cover internals.
