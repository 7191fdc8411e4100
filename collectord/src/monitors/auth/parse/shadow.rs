//! shadow-utils account tools: useradd, usermod, userdel, groupadd, groupmod, groupdel,
//! gpasswd, passwd, chage, chsh, chfn.

use super::{quoted, tty_name, unquote, AuthKind, AuthRecord};

pub(super) fn parse_account(program: &str, msg: &str) -> Option<AuthRecord> {
    // Lines a tool writes twice for one change (/etc/gshadow after /etc/group): the first is the event.
    if msg.contains("/etc/gshadow") || msg.contains("shadow group") {
        return None;
    }
    if let Some(rest) = msg.strip_prefix("new user: ") {
        let mut r = AuthRecord::new(AuthKind::UserAdded);
        r.detail = key_values(rest, &mut r.user, &mut r.tty);
        return Some(r);
    }
    if let Some(rest) = msg.strip_prefix("new group: ") {
        let mut r = AuthRecord::new(AuthKind::GroupAdded);
        r.detail = key_values(rest, &mut r.group, &mut r.tty);
        return Some(r);
    }
    // `group added to /etc/group: name=bob, GID=1001` is always followed by `new group:`.
    if msg.starts_with("group added to ") {
        return None;
    }
    let q = quoted(msg);
    let first = q.first().copied().unwrap_or("");
    let second = q.get(1).copied().unwrap_or("");
    let mut r = if msg.starts_with("delete user ") {
        let mut r = AuthRecord::new(AuthKind::UserDeleted);
        first.clone_into(&mut r.user);
        return Some(r);
    } else if msg.starts_with("removed group ") {
        // userdel: `removed group 'bob' owned by 'bob'`
        let mut r = AuthRecord::new(AuthKind::GroupDeleted);
        first.clone_into(&mut r.group);
        second.clone_into(&mut r.user);
        r
    } else if msg.starts_with("group '") || msg.starts_with("group `") {
        // groupdel: `group 'x' removed from /etc/group`, then `group 'x' removed`.
        if msg.contains(" removed from ") || !msg.contains(" removed") {
            return None;
        }
        let mut r = AuthRecord::new(AuthKind::GroupDeleted);
        first.clone_into(&mut r.group);
        return Some(r);
    } else if (msg.starts_with("add '") || msg.starts_with("delete '")) && !second.is_empty() {
        // useradd -G / usermod -G / userdel: `add 'bob' to group 'sudo'`, `delete 'bob' from group 'sudo'`
        let mut r = AuthRecord::new(AuthKind::UserChanged);
        first.clone_into(&mut r.user);
        second.clone_into(&mut r.group);
        r
    } else if let Some(rest) = msg.strip_prefix("password for ") {
        // shadow passwd without PAM: `password for 'bob' changed by 'root'`
        let mut r = AuthRecord::new(AuthKind::PasswordChanged);
        first.clone_into(&mut r.user);
        if let Some((_, by)) = rest.split_once(" changed by ") {
            r.detail = format!("by {}", unquote(by));
        }
        return Some(r);
    } else if let Some(rest) = msg.strip_prefix("group changed in ") {
        // groupmod: `group changed in /etc/group (group test/1002, new name: test2)`
        let mut r = AuthRecord::new(AuthKind::GroupChanged);
        if let Some((_, g)) = rest.split_once("(group ") {
            let end = g.find(['/', ',', ')']).unwrap_or(g.len());
            g[..end].clone_into(&mut r.group);
        }
        r
    } else if program == "gpasswd" || program == "groupmod" {
        // gpasswd: `user alice added by root to group sudo`, `members of group sudo set by root to …`
        let mut r = AuthRecord::new(AuthKind::GroupChanged);
        if let Some(rest) = msg.strip_prefix("user ") {
            rest.split(' ').next().unwrap_or("").clone_into(&mut r.user);
        }
        if let Some((_, g)) = msg.rsplit_once("group ") {
            unquote(g.split(' ').next().unwrap_or("")).clone_into(&mut r.group);
        }
        if r.group.is_empty() {
            first.clone_into(&mut r.group);
        }
        r
    } else if let Some(rest) = msg.strip_prefix("changed password expiry for ") {
        // chage
        let mut r = AuthRecord::new(AuthKind::UserChanged);
        rest.trim().clone_into(&mut r.user);
        r
    } else if msg.starts_with("change user ")
        || msg.starts_with("changed user ")
        || msg.starts_with("lock user ")
        || msg.starts_with("unlock user ")
    {
        // usermod: `change user 'bob' shell from '/bin/sh' to '/bin/bash'`, `change user name 'bob' to 'rob'`,
        // `lock user 'bob' password`; chsh: `changed user 'bob' shell to '/bin/zsh'`; chfn.
        let mut r = AuthRecord::new(AuthKind::UserChanged);
        first.clone_into(&mut r.user);
        r
    } else {
        return None;
    };
    msg.clone_into(&mut r.detail);
    Some(r)
}

/// `name=bob, UID=1001, GID=1001, home=/home/bob, shell=/bin/bash, from=/dev/pts/0`: `name` into
/// `name`, `from` into `tty`, the rest returned joined (as written) for `detail`.
fn key_values(s: &str, name: &mut String, tty: &mut String) -> String {
    let mut rest = Vec::new();
    for field in s.split(", ") {
        match field.split_once('=') {
            Some(("name", v)) => v.trim().clone_into(name),
            Some(("from", v)) => *tty = tty_name(v),
            _ => rest.push(field.trim()),
        }
    }
    rest.join(", ")
}
