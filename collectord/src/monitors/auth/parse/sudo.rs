//! sudo 1.8–1.9: commands run, authentication failures, refusals.

use super::{tty_name, AuthKind, AuthRecord};

/// `alice : [REASON ; ]TTY=pts/0 ; PWD=/home/alice ; USER=root[ ; GROUP=x][ ; ENV=…] ; COMMAND=…`
pub(super) fn parse_sudo(msg: &str) -> Option<AuthRecord> {
    let Some((user, rest)) = msg.split_once(" : ") else {
        // `bob is not in the sudoers file.  This incident will be reported.`
        let (user, _) = msg.split_once(" is not in the sudoers file")?;
        if user.is_empty() || user.contains(' ') {
            return None;
        }
        let mut r = AuthRecord::new(AuthKind::SudoNotInSudoers);
        user.clone_into(&mut r.user);
        r.detail = "not in the sudoers file".to_owned();
        return Some(r);
    };
    let user = user.trim();
    if user.is_empty() || user.contains(char::is_whitespace) {
        return None;
    }
    // COMMAND is last and may itself contain ` ; `.
    let (head, command) = if let Some(c) = rest.strip_prefix("COMMAND=") {
        ("", Some(c))
    } else if let Some((h, c)) = rest.split_once(" ; COMMAND=") {
        (h, Some(c))
    } else {
        (rest, None)
    };
    let mut r = AuthRecord::new(AuthKind::SudoCommand);
    user.clone_into(&mut r.user);
    let mut known = command.is_some();
    let mut reason = "";
    let mut extra: Vec<&str> = Vec::new();
    for field in head.split(" ; ") {
        let field = field.trim();
        if field.is_empty() {
            continue;
        }
        match sudo_kv(field) {
            Some(("TTY", v)) => {
                r.tty = tty_name(v);
                known = true;
            }
            Some(("PWD", v)) => {
                v.clone_into(&mut r.cwd);
                known = true;
            }
            Some(("USER", v)) => {
                v.clone_into(&mut r.target_user);
                known = true;
            }
            Some(_) => extra.push(field),
            None if reason.is_empty() => reason = field,
            None => extra.push(field),
        }
    }
    if !known {
        // `alice : unable to resolve host …` and other sudo diagnostics.
        return None;
    }
    if let Some(c) = command {
        c.trim().clone_into(&mut r.command);
    }
    let lower = reason.to_ascii_lowercase();
    r.kind = if reason.is_empty() {
        AuthKind::SudoCommand
    } else if lower.contains("incorrect password attempt") {
        AuthKind::SudoAuthFailure
    } else if lower.contains("not in sudoers") || lower.contains("not in the sudoers file") {
        AuthKind::SudoNotInSudoers
    } else {
        AuthKind::SudoDenied
    };
    r.success = r.kind.success();
    let mut detail: Vec<&str> = Vec::new();
    if !reason.is_empty() {
        detail.push(reason);
    }
    detail.extend(extra);
    r.detail = detail.join(" ; ");
    Some(r)
}

/// `KEY=value` with an upper-case key (sudo's field names).
fn sudo_kv(field: &str) -> Option<(&str, &str)> {
    let (k, v) = field.split_once('=')?;
    (!k.is_empty() && k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')).then_some((k, v))
}
