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
    // The working directory and the command's arguments are the user's to choose, and sudo
    // logs them as they are: ` ; USER=nobody ; COMMAND=/usr/bin/id` in either would add fields.
    // The real `USER=` is the one followed by nothing but sudo's own fields up to `COMMAND=`;
    // when more than one place looks like that, the line is ambiguous, and root is assumed if
    // any reading gives root (the worse case), and it is said.
    let rest = match split_at_user(rest) {
        Some(split) => split,
        None => return parse_fields(user, rest, None),
    };
    let (head, tail, candidates) = rest;
    let mut r = parse_fields(user, head, Some(tail))?;
    if candidates.len() > 1 {
        r.ambiguous = true;
        if let Some(root) = candidates.iter().find(|c| c.user == "root") {
            r.target_user = root.user.to_owned();
        }
        let users: Vec<&str> = candidates.iter().map(|c| c.user).collect();
        let note = format!(
            "ambiguous: the working directory or command repeats sudo's fields (target user one of {})",
            users.join(", ")
        );
        r.detail = if r.detail.is_empty() {
            note
        } else {
            format!("{} ; {note}", r.detail)
        };
    }
    Some(r)
}

/// One place where `USER=…` could start: the user named, and whether sudo's fields end there.
struct Candidate<'a> {
    at: usize,
    user: &'a str,
}

/// Splits `rest` at the real ` ; USER=` (the last well-formed one: see the caller), giving the
/// fields before it, the text from `USER=` on, and every well-formed place.
fn split_at_user(rest: &str) -> Option<(&str, &str, Vec<Candidate<'_>>)> {
    let pwd = rest.find("PWD=").unwrap_or(0);
    let candidates: Vec<Candidate<'_>> = rest
        .match_indices(" ; USER=")
        .filter(|(i, _)| *i >= pwd)
        .filter_map(|(i, m)| {
            let after = &rest[i + m.len()..];
            well_formed_tail(after).map(|user| Candidate { at: i, user })
        })
        .collect();
    let last = candidates.last()?;
    let (head, tail) = (&rest[..last.at], &rest[last.at + " ; ".len()..]);
    Some((head, tail, candidates))
}

/// `USER=name[ ; GROUP=g][ ; TSID=t][ ; ENV=…] ; COMMAND=…`: the user, when `after` (the text
/// following `USER=`) is that.
fn well_formed_tail(after: &str) -> Option<&str> {
    let (user, mut rest) = after.split_once(" ; ")?;
    if user.is_empty() || user.contains(char::is_whitespace) {
        return None;
    }
    loop {
        if rest.starts_with("COMMAND=") {
            return Some(user);
        }
        let (field, next) = rest.split_once(" ; ")?;
        let (k, v) = sudo_kv(field)?;
        match k {
            "GROUP" | "TSID" if !v.contains(char::is_whitespace) => {}
            "ENV" => {}
            _ => return None,
        }
        rest = next;
    }
}

/// The fields of `head` (`[REASON ; ]TTY=… ; PWD=…`) and of `tail` (`USER=… ; … ; COMMAND=…`,
/// None when the line has no well-formed `USER=`).
fn parse_fields(user: &str, head: &str, tail: Option<&str>) -> Option<AuthRecord> {
    match tail {
        Some(t) => match t.split_once(" ; COMMAND=") {
            Some((fields, command)) => parse_fields_inner(user, head, fields, Some(command)),
            None => parse_fields_inner(user, head, t, None),
        },
        None => {
            if let Some(command) = head.strip_prefix("COMMAND=") {
                return parse_fields_inner(user, "", "", Some(command));
            }
            match head.split_once(" ; COMMAND=") {
                Some((h, command)) => parse_fields_inner(user, h, "", Some(command)),
                None => parse_fields_inner(user, head, "", None),
            }
        }
    }
}

fn parse_fields_inner(
    user: &str,
    head: &str,
    tail_fields: &str,
    command: Option<&str>,
) -> Option<AuthRecord> {
    let mut r = AuthRecord::new(AuthKind::SudoCommand);
    user.clone_into(&mut r.user);
    let mut known = command.is_some();
    let mut reason = "";
    let mut extra: Vec<&str> = Vec::new();
    // PWD= is the last of the head's fields and is taken whole (it may contain ` ; `).
    let (head, pwd) = match head.find("PWD=") {
        Some(i) => (
            head[..i].trim_end().trim_end_matches(';').trim_end(),
            Some(&head[i + "PWD=".len()..]),
        ),
        None => (head, None),
    };
    if let Some(pwd) = pwd {
        pwd.clone_into(&mut r.cwd);
        known = true;
    }
    for field in head.split(" ; ").chain(tail_fields.split(" ; ")) {
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
