//! The HTTPS sender.
