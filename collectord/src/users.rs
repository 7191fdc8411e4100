//! uid → user name, cached. Looking a name up goes through NSS and reads `/etc/passwd`; at a
//! thousand execs a second that is too slow to do per event. The cache is bounded and is
//! dropped whenever `/etc/passwd` changes, so a renamed or new user shows correctly.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use nix::unistd::{Uid, User};

const MAX_ENTRIES: usize = 4096;
const RECHECK: Duration = Duration::from_secs(2);

pub struct UserNames {
    names: HashMap<u32, String>,
    passwd_mtime: Option<SystemTime>,
    checked: Instant,
}

impl Default for UserNames {
    fn default() -> Self {
        Self::new()
    }
}

impl UserNames {
    pub fn new() -> Self {
        UserNames {
            names: HashMap::new(),
            passwd_mtime: passwd_mtime(),
            checked: Instant::now(),
        }
    }

    /// The name for `uid`, or the number as text when it has none.
    pub fn name(&mut self, uid: u32) -> String {
        if self.checked.elapsed() >= RECHECK {
            self.checked = Instant::now();
            let now = passwd_mtime();
            if now != self.passwd_mtime {
                self.passwd_mtime = now;
                self.names.clear();
            }
        }
        if let Some(n) = self.names.get(&uid) {
            return n.clone();
        }
        let name = match User::from_uid(Uid::from_raw(uid)) {
            Ok(Some(u)) => u.name,
            _ => uid.to_string(),
        };
        if self.names.len() >= MAX_ENTRIES {
            self.names.clear();
        }
        self.names.insert(uid, name.clone());
        name
    }
}

fn passwd_mtime() -> Option<SystemTime> {
    std::fs::metadata("/etc/passwd")
        .and_then(|m| m.modified())
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_and_unknown() {
        let mut u = super::UserNames::new();
        assert_eq!(u.name(0), "root");
        assert_eq!(u.name(4_000_000_123), "4000000123");
    }
}
