//! Test support: an in-process HTTPS management server.
