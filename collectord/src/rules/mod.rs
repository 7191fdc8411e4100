//! Detection rules: what makes an event WARNING or CRITICAL, and which technique it shows.
//!
//! A rule names the events it catches by their fields (`process.exe`, `file.path`,
//! `process.ancestors.name`, …; see [`field`]), lists exceptions, and gives a severity, a title
//! and MITRE ATT&CK technique ids. The built-in set (`default.json`, compiled in) is read first,
//! then every `*.json` file of `monitoring.rules_dir` in name order: those add rules, replace a
//! built-in one by its id, or `override` one (its severity, `enabled`, more exceptions).
//!
//! Rules are compiled once; matching an event reads its fields in place and allocates nothing.
//! An event takes the severity of the most severe rule it matches (never lower than what its
//! monitor gave it: a stalled monitor or a forged log line stays what it is) and that rule's id,
//! title and techniques.

mod field;
mod load;

use std::path::Path;
use std::sync::{Arc, RwLock};

use sec_tracker_proto::v1::{Event, Severity};

use field::{Field, Value};
pub use load::{load, Problem};

/// The rules as shipped: read-only, in the binary.
pub const DEFAULT_RULES: &str = include_str!("default.json");

/// How a rule tests one field.
#[derive(Debug, Clone)]
enum Test {
    Exact(Vec<Vec<u8>>),
    Prefix(Vec<Vec<u8>>),
    Suffix(Vec<Vec<u8>>),
    Contains(Vec<Vec<u8>>),
    Glob(Vec<Vec<u8>>),
    Numbers(Vec<u64>),
    /// Any of these bits set.
    Bits(u64),
    Bool(bool),
}

impl Test {
    fn accepts(&self, v: Value<'_>) -> bool {
        match (self, v) {
            (Test::Exact(set), Value::Str(s)) => set.iter().any(|x| x == s),
            (Test::Prefix(set), Value::Str(s)) => set.iter().any(|x| s.starts_with(x)),
            (Test::Suffix(set), Value::Str(s)) => set.iter().any(|x| s.ends_with(x)),
            (Test::Contains(set), Value::Str(s)) => set
                .iter()
                .any(|x| x.is_empty() || s.windows(x.len()).any(|w| w == x.as_slice())),
            (Test::Glob(set), Value::Str(s)) => set.iter().any(|g| glob(g, s)),
            (Test::Numbers(set), Value::Num(n)) => set.contains(&n),
            (Test::Bits(bits), Value::Num(n)) => n & bits != 0,
            (Test::Bool(want), Value::Bool(b)) => *want == b,
            _ => false,
        }
    }
}

/// `*` matches any run of bytes (`/` included), `?` one byte; nothing else is special.
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let (mut star, mut from) = (None, 0);
    while i < s.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            from = i;
            p += 1;
        } else if let Some(st) = star {
            p = st + 1;
            from += 1;
            i = from;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

#[derive(Debug, Clone)]
struct Condition {
    field: Field,
    test: Test,
    negate: bool,
}

impl Condition {
    fn holds(&self, e: &Event) -> bool {
        self.field.any(e, &mut |v| self.test.accepts(v)) != self.negate
    }

    fn holds_json(&self, e: &serde_json::Value) -> bool {
        self.field.any_json(e, &mut |v| self.test.accepts(v)) != self.negate
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub mitre: Vec<String>,
    pub enabled: bool,
    /// Where it was defined (`built-in` or a file), for `rules list`.
    pub origin: String,
    /// The event type it applies to (all of its conditions agree), or None for any.
    event_type: Option<String>,
    conditions: Vec<Condition>,
    exceptions: Vec<Vec<Condition>>,
}

impl Rule {
    /// Whether `e` is what this rule catches (and none of its exceptions).
    pub fn matches(&self, e: &Event) -> bool {
        self.enabled
            && self.event_type.as_deref().is_none_or(|t| {
                Field::Type.any(e, &mut |v| matches!(v, Value::Str(s) if s == t.as_bytes()))
            })
            && self.conditions.iter().all(|c| c.holds(e))
            && !self
                .exceptions
                .iter()
                .any(|ex| ex.iter().all(|c| c.holds(e)))
    }
}

impl Rule {
    /// [`Rule::matches`] for an event in its JSON shape (a line of `watch --json`).
    pub fn matches_json(&self, e: &serde_json::Value) -> bool {
        self.enabled
            && self
                .event_type
                .as_deref()
                .is_none_or(|t| e["type"].as_str() == Some(t))
            && self.conditions.iter().all(|c| c.holds_json(e))
            && !self
                .exceptions
                .iter()
                .any(|ex| ex.iter().all(|c| c.holds_json(e)))
    }
}

/// A compiled set of rules.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// The most severe rule `e` matches (the first such in order), if any.
    pub fn best_match(&self, e: &Event) -> Option<&Rule> {
        let mut best: Option<&Rule> = None;
        for r in &self.rules {
            if best.is_some_and(|b| b.severity >= r.severity) {
                continue;
            }
            if r.matches(e) {
                best = Some(r);
            }
        }
        best
    }

    /// [`RuleSet::best_match`] for an event in its JSON shape.
    pub fn best_match_json(&self, e: &serde_json::Value) -> Option<&Rule> {
        let mut best: Option<&Rule> = None;
        for r in &self.rules {
            if best.is_some_and(|b| b.severity >= r.severity) {
                continue;
            }
            if r.matches_json(e) {
                best = Some(r);
            }
        }
        best
    }

    /// Raises `e` to its best rule's severity and names the rule on it.
    pub fn apply(&self, e: &mut Event) {
        if let Some(r) = self.best_match(e) {
            e.severity = e.severity.max(r.severity as i32);
            e.rule_id.clone_from(&r.id);
            e.rule_title.clone_from(&r.title);
            e.mitre.clone_from(&r.mitre);
        }
    }
}

/// The rules in force, swapped whole on reload so that no event sees half a set.
#[derive(Debug, Clone, Default)]
pub struct Rules(Arc<RwLock<Arc<RuleSet>>>);

impl Rules {
    pub fn new(set: RuleSet) -> Rules {
        Rules(Arc::new(RwLock::new(Arc::new(set))))
    }

    /// The built-in rules and those of `dir`; a problem in any file is an error naming it all.
    pub fn load(dir: Option<&Path>) -> Result<Rules, Vec<Problem>> {
        load(DEFAULT_RULES, dir).map(Rules::new)
    }

    pub fn current(&self) -> Arc<RuleSet> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn replace(&self, set: RuleSet) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }

    pub fn apply(&self, e: &mut Event) {
        self.current().apply(e);
    }
}

#[cfg(test)]
mod tests;
