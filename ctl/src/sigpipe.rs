//! The only place this crate uses `unsafe`: putting SIGPIPE back to its default action. Rust
//! programs start with it ignored, so a write to a closed pipe (`sec-trackerctl watch | head`,
//! `config-check | grep -q`) fails and `println!` panics with "Broken pipe"; a Unix tool should
//! end quietly there instead, as `cat` does.
#![allow(unsafe_code)]

use nix::sys::signal::{signal, SigHandler, Signal};

pub(crate) fn default_action() {
    // SAFETY: called first thing in main, before any other thread exists; SIG_DFL installs no
    // handler of ours, so nothing runs in signal context.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}
