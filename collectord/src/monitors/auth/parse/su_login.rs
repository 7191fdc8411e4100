//! su (util-linux and shadow) and console login (util-linux and shadow).

use super::{parse_digits, tty_name, unquote, AuthKind, AuthRecord};

pub(super) fn parse_su(msg: &str) -> Option<AuthRecord> {
    // util-linux: `(to root) alice on pts/0`, `FAILED SU (to root) alice on pts/0`.
    let (kind, rest) = match msg.strip_prefix("FAILED SU ") {
        Some(rest) => (AuthKind::SuFailure, rest),
        None => (AuthKind::SuSuccess, msg),
    };
    if let Some(rest) = rest.strip_prefix("(to ") {
        let (target, rest) = rest.split_once(") ")?;
        let (user, tty) = match rest.rsplit_once(" on ") {
            Some((user, tty)) => (user, tty),
            None => (rest, ""),
        };
        let mut r = AuthRecord::new(kind);
        target.clone_into(&mut r.target_user);
        user.clone_into(&mut r.user);
        r.tty = tty_name(tty);
        return Some(r);
    }
    // shadow-utils: `Successful su for root by alice`, `FAILED su for root by alice`.
    // (Its sulog lines `+ /dev/pts/0 alice:root` / `- …` repeat these: not events.)
    let (kind, rest) = if let Some(rest) = msg.strip_prefix("Successful su for ") {
        (AuthKind::SuSuccess, rest)
    } else if let Some(rest) = msg.strip_prefix("FAILED su for ") {
        (AuthKind::SuFailure, rest)
    } else {
        return None;
    };
    let (target, user) = rest.rsplit_once(" by ")?;
    let mut r = AuthRecord::new(kind);
    target.clone_into(&mut r.target_user);
    user.clone_into(&mut r.user);
    Some(r)
}

pub(super) fn parse_login(msg: &str) -> Option<AuthRecord> {
    if let Some(rest) = msg.strip_prefix("ROOT LOGIN ") {
        // shadow: `ROOT LOGIN  on '/dev/tty1'`; util-linux: `ROOT LOGIN ON tty1[ FROM host]`.
        let mut r = AuthRecord::new(AuthKind::ConsoleLogin);
        r.user = "root".to_owned();
        login_place(rest, &mut r);
        return Some(r);
    }
    if let Some(rest) = msg.strip_prefix("LOGIN ON ") {
        // util-linux: `LOGIN ON tty1 BY alice[ FROM host]`.
        let (tty, rest) = rest.split_once(" BY ")?;
        let (user, host) = match rest.rsplit_once(" FROM ") {
            Some((user, host)) => (user, host),
            None => (rest, ""),
        };
        let mut r = AuthRecord::new(AuthKind::ConsoleLogin);
        r.tty = tty_name(tty);
        user.clone_into(&mut r.user);
        host.clone_into(&mut r.source_address);
        return Some(r);
    }
    if msg.starts_with('\'') {
        // shadow with LOG_OK_LOGINS: `'alice' logged in  on '/dev/tty1'`.
        let (user, place) = msg.split_once(" logged in")?;
        let mut r = AuthRecord::new(AuthKind::ConsoleLogin);
        unquote(user).clone_into(&mut r.user);
        login_place(place, &mut r);
        return Some(r);
    }
    let (rest, too_many) = if let Some(rest) = msg.strip_prefix("FAILED LOGIN ") {
        (rest, false)
    } else if let Some(rest) = msg.strip_prefix("TOO MANY LOGIN TRIES ") {
        (rest, true)
    } else {
        return None;
    };
    // shadow: `(1) on '/dev/tty1'[ from 'host'] FOR 'alice', Authentication failure`
    // util-linux: `1 FROM tty1 FOR alice, Authentication failure`
    let rest = rest.trim_start();
    let count_end = rest.find(' ').unwrap_or(rest.len());
    let count = rest[..count_end]
        .trim_start_matches('(')
        .trim_end_matches(')');
    let rest = &rest[count_end..];
    let (place, rest) = rest.split_once(" FOR ")?;
    let (user, reason) = match rest.split_once(", ") {
        Some((user, reason)) => (user, reason),
        None => (rest, ""),
    };
    let mut r = AuthRecord::new(AuthKind::ConsoleLoginFailure);
    unquote(user).clone_into(&mut r.user);
    login_place(place, &mut r);
    let mut detail = String::new();
    if too_many {
        detail.push_str("too many tries, ");
    }
    if let Some(n) = parse_digits(count) {
        detail.push_str(&format!("attempt {n}: "));
    }
    detail.push_str(reason.trim());
    r.detail = detail.trim_end_matches([' ', ':', ',']).to_owned();
    Some(r)
}

/// ` on '/dev/tty1'[ from 'host']` (shadow) or `ON tty1[ FROM host]` / `FROM tty1` (util-linux
/// writes the tty after FROM when there is no remote host).
fn login_place(s: &str, r: &mut AuthRecord) {
    let s = s.trim();
    let (on, from) = if let Some(rest) = s.strip_prefix("on ").or_else(|| s.strip_prefix("ON ")) {
        match rest
            .split_once(" from ")
            .or_else(|| rest.split_once(" FROM "))
        {
            Some((on, from)) => (on, from),
            None => (rest, ""),
        }
    } else if let Some(rest) = s.strip_prefix("from ").or_else(|| s.strip_prefix("FROM ")) {
        ("", rest)
    } else {
        return;
    };
    let (on, from) = (unquote(on), unquote(from));
    if on.is_empty() && looks_like_tty(from) {
        r.tty = tty_name(from);
    } else {
        r.tty = tty_name(on);
        from.clone_into(&mut r.source_address);
    }
}

fn looks_like_tty(s: &str) -> bool {
    let s = s.strip_prefix("/dev/").unwrap_or(s);
    ["tty", "pts/", "console", "hvc", "ttyS", "ttyAMA"]
        .iter()
        .any(|p| s.starts_with(p))
}
