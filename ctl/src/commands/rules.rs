//! `rules list` and `rules test`: the detection rules in force, and what they would make of
//! recorded events, so that an operator can try a rule before deploying it.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use collectord::rules::{RuleSet, Rules};
use sec_tracker_proto::json::Named;
use serde_json::{json, Value};

use crate::cli::RulesCommand;
use crate::commands::Context;

/// The rules of the config's `monitoring.rules_dir` after the built-in ones; every problem
/// printed, exit 1, when there is one.
fn load(ctx: &Context) -> Result<RuleSet, u8> {
    match Rules::load(Some(&ctx.config.monitoring.rules_dir)) {
        Ok(r) => Ok((*r.current()).clone()),
        Err(problems) => {
            for p in &problems {
                eprintln!("sec-trackerctl: {p}");
            }
            Err(1)
        }
    }
}

pub(crate) fn run(ctx: &Context, cmd: &RulesCommand) -> anyhow::Result<u8> {
    let set = match load(ctx) {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    match cmd {
        RulesCommand::List { json } => {
            for r in &set.rules {
                if *json {
                    let v = json!({"id": r.id, "title": r.title, "severity": r.severity.name(),
                                   "mitre": r.mitre, "enabled": r.enabled, "origin": r.origin,
                                   "description": r.description});
                    println!("{v}");
                } else {
                    println!(
                        "{:<34} {:<9} {:<22} {}{}",
                        r.id,
                        r.severity.name(),
                        r.mitre.join(","),
                        r.title,
                        match (r.enabled, r.origin.as_str()) {
                            (false, _) => " (disabled)".to_owned(),
                            (true, "built-in") => String::new(),
                            (true, o) => format!(" ({o})"),
                        }
                    );
                }
            }
            Ok(0)
        }
        RulesCommand::Test { file } => test(&set, file),
    }
}

/// Each event that a rule would raise, then a count per rule.
fn test(set: &RuleSet, file: &Path) -> anyhow::Result<u8> {
    let reader: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(file).map_err(
            |e| anyhow::anyhow!("cannot open {}: {e}", file.display()),
        )?))
    };
    let (mut events, mut bad) = (0u64, 0u64);
    let mut fired: BTreeMap<String, u64> = BTreeMap::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(e) = serde_json::from_str::<Value>(&line) else {
            bad += 1;
            eprintln!("line {}: not JSON, skipped", n + 1);
            continue;
        };
        if e["type"] == "gap" || !e["details"].is_object() {
            continue;
        }
        events += 1;
        if let Some(r) = set.best_match_json(&e) {
            *fired.entry(r.id.clone()).or_default() += 1;
            println!(
                "line {}: {} {} ({}): {}",
                n + 1,
                r.severity.name(),
                r.id,
                r.title,
                e["message"].as_str().unwrap_or("")
            );
        }
    }
    println!(
        "{events} events, {} would fire a rule{}",
        fired.values().sum::<u64>(),
        if bad > 0 {
            format!("; {bad} lines were not JSON")
        } else {
            String::new()
        }
    );
    for (id, n) in &fired {
        println!("  {id}: {n}");
    }
    Ok(0)
}
