//! Auth monitor: logins, sudo, su, account changes.

pub mod parse;
