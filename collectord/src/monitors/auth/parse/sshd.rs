//! OpenSSH `sshd` (and `sshd-session`, `sshd-auth`, OpenSSH 9.8+): accepted and failed logins,
//! invalid users, refusals, disconnects.

use super::{parse_digits, split_from_addr, tail_is_end, tail_is_ssh_proto, AuthKind, AuthRecord};

pub(super) fn parse_sshd(msg: &str) -> Option<AuthRecord> {
    let msg = msg.strip_suffix(" [preauth]").unwrap_or(msg).trim_end();
    if let Some(rest) = msg.strip_prefix("Accepted ") {
        return ssh_auth(AuthKind::SshAccepted, rest);
    }
    if let Some(rest) = msg.strip_prefix("Failed ") {
        return ssh_auth(AuthKind::SshFailed, rest);
    }
    if let Some(rest) = msg.strip_prefix("Invalid user ") {
        // OpenSSH 7.5+: `Invalid user X from ADDR port P`; before: `Invalid user X from ADDR`.
        // `Invalid user  from …` (empty name) keeps the empty user.
        let rest = format!(" {rest}");
        let (user, addr, port, _) = split_from_addr(&rest, false, tail_is_end)?;
        let mut r = AuthRecord::new(AuthKind::SshInvalidUser);
        r.user = user.strip_prefix(' ').unwrap_or(user).to_owned();
        r.source_address = addr.to_owned();
        r.source_port = port;
        r.invalid_user = true;
        return Some(r);
    }
    if let Some(rest) = msg.strip_prefix("User ") {
        // `User root from 203.0.113.9 not allowed because not listed in AllowUsers`
        let (who, reason) = rest.rsplit_once(" not allowed because ")?;
        let (user, addr) = who.rsplit_once(" from ")?;
        let mut r = AuthRecord::new(AuthKind::SshInvalidUser);
        r.user = user.to_owned();
        r.source_address = addr.to_owned();
        r.invalid_user = true;
        r.detail = format!("not allowed because {reason}");
        return Some(r);
    }
    if let Some(rest) = msg.strip_prefix("Disconnected from user ") {
        // `Disconnected from user alice 203.0.113.5 port 52144` (OpenSSH 7.6+)
        let (who, port) = rest.rsplit_once(" port ")?;
        let port = parse_digits(port)?;
        let (user, addr) = who.rsplit_once(' ')?;
        let mut r = AuthRecord::new(AuthKind::SshSessionClosed);
        r.user = user.to_owned();
        r.source_address = addr.to_owned();
        r.source_port = port;
        r.detail = "disconnected".to_owned();
        return Some(r);
    }
    None
}

/// `METHOD for [invalid user ]USER from ADDR port PORT ssh2[: extra]`.
fn ssh_auth(kind: AuthKind, rest: &str) -> Option<AuthRecord> {
    let (method, rest) = rest.split_once(" for ")?;
    if method.is_empty() || method.contains(' ') {
        return None;
    }
    // An empty invalid user name is logged as `for invalid user  from`: keep the space so
    // that ` from ` is still found.
    let rest = format!(" {rest}");
    let (who, addr, port, tail) = split_from_addr(&rest, true, tail_is_ssh_proto)?;
    let who = who.strip_prefix(' ').unwrap_or(who);
    let mut r = AuthRecord::new(kind);
    match who.strip_prefix("invalid user ") {
        Some(user) => {
            r.invalid_user = true;
            r.user = user.to_owned();
        }
        None => r.user = who.to_owned(),
    }
    method.clone_into(&mut r.method);
    r.source_address = addr.to_owned();
    r.source_port = port;
    // ` ssh2: ED25519 SHA256:…` → the key type and fingerprint.
    if let Some((_, extra)) = tail.split_once(": ") {
        extra.trim().clone_into(&mut r.detail);
    }
    Some(r)
}
