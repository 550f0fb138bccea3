//! The CLIs end to end against a real hearthd.
