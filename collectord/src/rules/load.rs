//! Reading rule files: every problem found, each naming its file, rule and field, with a
//! suggestion when a name is a typo of a known one. A set with any problem is not used.

use std::fmt;
use std::path::Path;

use serde_json::{Map, Value};

use super::field::{Field, Kind};
use super::{Condition, Rule, RuleSet, Test};
use sec_tracker_proto::v1::Severity;

/// One thing wrong with a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// The rule's id, or its position when it has none; empty for the file itself.
    pub rule: String,
    /// The key, e.g. `match.process.exe` or `severity`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if !self.rule.is_empty() {
            write!(f, ": rule {}", self.rule)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

const RULE_KEYS: &[&str] = &[
    "id",
    "title",
    "description",
    "severity",
    "mitre",
    "match",
    "except",
    "enabled",
];
const OVERRIDE_KEYS: &[&str] = &["id", "severity", "enabled", "except"];
const TESTS: &[&str] = &[
    "exact", "prefix", "suffix", "contains", "glob", "bits", "not",
];

/// The built-in rules (`defaults`), then each `*.json` file of `dir` in name order.
pub fn load(defaults: &str, dir: Option<&Path>) -> Result<RuleSet, Vec<Problem>> {
    let mut set = RuleSet::default();
    let mut problems = Vec::new();
    read_file(defaults, "built-in", &mut set, &mut problems);
    if let Some(dir) = dir {
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                let mut files: Vec<_> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect();
                files.sort();
                for path in files {
                    let name = path.display().to_string();
                    match std::fs::read_to_string(&path) {
                        Ok(text) => read_file(&text, &name, &mut set, &mut problems),
                        Err(e) => problems.push(Problem {
                            file: name,
                            rule: String::new(),
                            field: String::new(),
                            message: format!("cannot read: {e}"),
                        }),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => problems.push(Problem {
                file: dir.display().to_string(),
                rule: String::new(),
                field: String::new(),
                message: format!("cannot list the rules directory: {e}"),
            }),
        }
    }
    if problems.is_empty() {
        Ok(set)
    } else {
        Err(problems)
    }
}

/// Parses one file into `set`.
pub(super) fn read_file(text: &str, file: &str, set: &mut RuleSet, problems: &mut Vec<Problem>) {
    let mut p = Problems {
        file,
        rule: String::new(),
        out: problems,
    };
    let root: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            p.push("", format!("not valid JSON: {e}"));
            return;
        }
    };
    let Some(root) = root.as_object() else {
        p.push(
            "",
            "must be an object with \"rules\" and/or \"overrides\"".into(),
        );
        return;
    };
    for key in root.keys() {
        if key != "rules" && key != "overrides" {
            p.push(key, unknown(key, &["rules", "overrides"]));
        }
    }
    if let Some(rules) = root.get("rules") {
        let Some(rules) = rules.as_array() else {
            p.push("rules", "must be a list of rules".into());
            return;
        };
        for (i, r) in rules.iter().enumerate() {
            if let Some(rule) = parse_rule(r, i, file, &mut p) {
                match set.rules.iter_mut().find(|x| x.id == rule.id) {
                    Some(existing) if existing.origin == "built-in" && file != "built-in" => {
                        *existing = rule
                    }
                    Some(_) => {
                        p.rule.clone_from(&rule.id);
                        p.push("id", "defined twice".into());
                    }
                    None => set.rules.push(rule),
                }
            }
        }
    }
    if let Some(overrides) = root.get("overrides") {
        let Some(overrides) = overrides.as_array() else {
            p.push("overrides", "must be a list".into());
            return;
        };
        for (i, o) in overrides.iter().enumerate() {
            apply_override(o, i, set, &mut p);
        }
    }
}

struct Problems<'a> {
    file: &'a str,
    rule: String,
    out: &'a mut Vec<Problem>,
}

impl Problems<'_> {
    fn push(&mut self, field: &str, message: String) {
        self.out.push(Problem {
            file: self.file.to_owned(),
            rule: self.rule.clone(),
            field: field.to_owned(),
            message,
        });
    }
}

fn unknown(key: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), *k))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((score, k)) if score > 0.8 => format!("unknown key; did you mean {k:?}?"),
        _ => format!("unknown key (known: {})", known.join(", ")),
    }
}

fn severity(v: &Value) -> Option<Severity> {
    match v.as_str()?.to_ascii_lowercase().as_str() {
        "info" => Some(Severity::Info),
        "warning" => Some(Severity::Warning),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

fn parse_rule(v: &Value, index: usize, file: &str, p: &mut Problems<'_>) -> Option<Rule> {
    p.rule = format!("#{}", index + 1);
    let Some(obj) = v.as_object() else {
        p.push("", "must be an object".into());
        return None;
    };
    if let Some(id) = obj.get("id").and_then(Value::as_str) {
        p.rule = id.to_owned();
    }
    let before = p.out.len();
    for key in obj.keys() {
        if !RULE_KEYS.contains(&key.as_str()) {
            p.push(key, unknown(key, RULE_KEYS));
        }
    }
    let id = match obj.get("id").and_then(Value::as_str) {
        Some(id)
            if !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') =>
        {
            id.to_owned()
        }
        _ => {
            p.push("id", "needed: letters, digits, '-', '_' or '.'".into());
            String::new()
        }
    };
    let text = |key: &str, p: &mut Problems<'_>| match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        None if key == "description" => String::new(),
        _ => {
            p.push(key, "needed, as text".into());
            String::new()
        }
    };
    let title = text("title", p);
    let description = text("description", p);
    let sev = match obj.get("severity").map(severity) {
        Some(Some(s)) => s,
        _ => {
            p.push(
                "severity",
                "needed: \"info\", \"warning\" or \"critical\"".into(),
            );
            Severity::Info
        }
    };
    let mitre = match obj.get("mitre") {
        None => Vec::new(),
        Some(Value::Array(a)) if a.iter().all(|t| t.as_str().is_some_and(is_technique)) => a
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            p.push(
                "mitre",
                "must be a list of ATT&CK technique ids such as \"T1059\" or \"T1548.001\"".into(),
            );
            Vec::new()
        }
    };
    let enabled = match obj.get("enabled") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            p.push("enabled", "must be true or false".into());
            true
        }
    };
    let conditions = match obj.get("match") {
        Some(Value::Object(m)) if !m.is_empty() => conditions(m, "match", p),
        _ => {
            p.push("match", "needed: an object of field tests".into());
            Vec::new()
        }
    };
    let exceptions = exceptions(obj.get("except"), p);
    let event_type = event_type(&conditions, p);
    (p.out.len() == before).then(|| Rule {
        id,
        title,
        description,
        severity: sev,
        mitre,
        enabled,
        origin: file.to_owned(),
        event_type,
        conditions,
        exceptions,
    })
}

fn is_technique(t: &str) -> bool {
    let b = t.as_bytes();
    let (main, sub) = match t.split_once('.') {
        Some((m, s)) => (m.as_bytes(), Some(s.as_bytes())),
        None => (b, None),
    };
    main.len() == 5
        && main[0] == b'T'
        && main[1..].iter().all(u8::is_ascii_digit)
        && sub.is_none_or(|s| s.len() == 3 && s.iter().all(u8::is_ascii_digit))
}

fn exceptions(v: Option<&Value>, p: &mut Problems<'_>) -> Vec<Vec<Condition>> {
    match v {
        None => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e.as_object() {
                Some(m) if !m.is_empty() => Some(conditions(m, &format!("except[{i}]"), p)),
                _ => {
                    p.push(
                        &format!("except[{i}]"),
                        "must be an object of field tests".into(),
                    );
                    None
                }
            })
            .collect(),
        Some(_) => {
            p.push("except", "must be a list of objects of field tests".into());
            Vec::new()
        }
    }
}

/// The one event type all conditions point at (the `type` test included), if any.
fn event_type(conditions: &[Condition], p: &mut Problems<'_>) -> Option<String> {
    let mut types: Vec<String> = conditions
        .iter()
        .filter_map(|c| c.field.event_type().map(str::to_owned))
        .collect();
    for c in conditions
        .iter()
        .filter(|c| c.field == Field::Type && !c.negate)
    {
        if let Test::Exact(v) = &c.test {
            if v.len() == 1 {
                types.push(String::from_utf8_lossy(&v[0]).into_owned());
            }
        }
    }
    types.dedup();
    types.sort();
    types.dedup();
    if types.len() > 1 {
        p.push(
            "match",
            format!(
                "tests fields of different event types ({})",
                types.join(", ")
            ),
        );
    }
    types.into_iter().next()
}

fn conditions(m: &Map<String, Value>, at: &str, p: &mut Problems<'_>) -> Vec<Condition> {
    let mut out = Vec::new();
    for (name, v) in m {
        let key = format!("{at}.{name}");
        let Some(field) = Field::parse(name) else {
            let known: Vec<&str> = Field::ALL.iter().map(|(n, _)| *n).collect();
            p.push(
                &key,
                unknown(name, &known).replace("unknown key", "unknown field"),
            );
            continue;
        };
        if let Some(c) = condition(field, v, &key, p) {
            out.push(c);
        }
    }
    out
}

fn strings(v: &Value) -> Option<Vec<Vec<u8>>> {
    match v {
        Value::String(s) => Some(vec![s.as_bytes().to_vec()]),
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|x| x.as_str().map(|s| s.as_bytes().to_vec()))
            .collect(),
        _ => None,
    }
}

fn numbers(v: &Value) -> Option<Vec<u64>> {
    match v {
        Value::Number(n) => Some(vec![n.as_u64()?]),
        Value::Array(a) if !a.is_empty() => a.iter().map(Value::as_u64).collect(),
        _ => None,
    }
}

/// A number, or an octal string such as "04000" for mode bits.
fn bits(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => u64::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
        _ => None,
    }
}

fn condition(field: Field, v: &Value, key: &str, p: &mut Problems<'_>) -> Option<Condition> {
    let kind = field.kind();
    let (test, negate) = match v {
        Value::Bool(b) if kind == Kind::Flag => (Test::Bool(*b), false),
        Value::Number(_) | Value::Array(_) if kind == Kind::Number && numbers(v).is_some() => {
            (Test::Numbers(numbers(v)?), false)
        }
        Value::String(_) | Value::Array(_) if kind == Kind::Text && strings(v).is_some() => {
            (Test::Exact(strings(v)?), false)
        }
        Value::Object(o) => {
            let negate = match o.get("not") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    p.push(&format!("{key}.not"), "must be true or false".into());
                    false
                }
            };
            let tests: Vec<&String> = o.keys().filter(|k| *k != "not").collect();
            let [name] = tests.as_slice() else {
                p.push(
                    key,
                    format!("needs exactly one test of: {}", TESTS.join(", ")),
                );
                return None;
            };
            let arg = &o[name.as_str()];
            let test = match (name.as_str(), kind) {
                ("bits", Kind::Number) => bits(arg).map(Test::Bits),
                ("exact", Kind::Number) => numbers(arg).map(Test::Numbers),
                ("exact", Kind::Text) => strings(arg).map(Test::Exact),
                ("prefix", Kind::Text) => strings(arg).map(Test::Prefix),
                ("suffix", Kind::Text) => strings(arg).map(Test::Suffix),
                ("contains", Kind::Text) => strings(arg).map(Test::Contains),
                ("glob", Kind::Text) => strings(arg).map(Test::Glob),
                (other, _) if !TESTS.contains(&other) => {
                    p.push(
                        &format!("{key}.{other}"),
                        unknown(other, TESTS).replace("unknown key", "unknown test"),
                    );
                    return None;
                }
                (other, _) => {
                    p.push(
                        key,
                        format!(
                            "{other:?} does not apply to {} ({})",
                            field.name(),
                            kind_text(kind)
                        ),
                    );
                    return None;
                }
            };
            let Some(test) = test else {
                p.push(
                    &format!("{key}.{name}"),
                    format!("wrong argument for {} ({})", field.name(), kind_text(kind)),
                );
                return None;
            };
            (test, negate)
        }
        _ => {
            p.push(
                key,
                format!("wrong value for {} ({})", field.name(), kind_text(kind)),
            );
            return None;
        }
    };
    Some(Condition {
        field,
        test,
        negate,
    })
}

fn kind_text(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "text: a string, a list of strings, or {\"prefix\"|\"suffix\"|\"contains\"|\"glob\"|\"exact\": …}",
        Kind::Number => "a number, a list of numbers, or {\"bits\": N}",
        Kind::Flag => "true or false",
    }
}

fn apply_override(v: &Value, index: usize, set: &mut RuleSet, p: &mut Problems<'_>) {
    p.rule = format!("override #{}", index + 1);
    let Some(obj) = v.as_object() else {
        p.push("", "must be an object".into());
        return;
    };
    for key in obj.keys() {
        if !OVERRIDE_KEYS.contains(&key.as_str()) {
            p.push(key, unknown(key, OVERRIDE_KEYS));
        }
    }
    let Some(id) = obj.get("id").and_then(Value::as_str) else {
        p.push("id", "needed: the id of the rule to change".into());
        return;
    };
    p.rule = id.to_owned();
    let Some(pos) = set.rules.iter().position(|r| r.id == id) else {
        let known: Vec<&str> = set.rules.iter().map(|r| r.id.as_str()).collect();
        p.push(
            "id",
            unknown(id, &known).replace("unknown key", "no such rule"),
        );
        return;
    };
    if let Some(s) = obj.get("severity") {
        match severity(s) {
            Some(s) => set.rules[pos].severity = s,
            None => p.push(
                "severity",
                "must be \"info\", \"warning\" or \"critical\"".into(),
            ),
        }
    }
    match obj.get("enabled") {
        Some(Value::Bool(b)) => set.rules[pos].enabled = *b,
        Some(_) => p.push("enabled", "must be true or false".into()),
        None => {}
    }
    let more = exceptions(obj.get("except"), p);
    set.rules[pos].exceptions.extend(more);
}
