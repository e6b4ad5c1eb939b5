//! weir's L7 worker (see ARCHITECTURE.md). Being built.
