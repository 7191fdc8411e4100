//! File monitor.
