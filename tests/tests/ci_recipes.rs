//! The CI recipes of docs/ci/ (docs/ci.md) work the first time: each file parses as YAML,
//! every command it runs exists — make targets in the Makefile, `vmtest-runner` subcommands,
//! `fixtures/` scripts and recipes, nextest subcommands and every flag given to them — and its
//! partition matrix covers every partition index exactly once.
//!
//! Not checked here (no network): that the `uses:` actions and container images exist.

use std::collections::BTreeSet;
use std::process::Command;

use serde_norway::Value;
use vmtest_tests::scale::repository;

fn load(rel: &str) -> Value {
    let path = repository().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

/// Every shell line of `job` under `keys` (GitHub's `steps[].run`, GitLab's scripts).
fn shell_lines(job: &Value, keys: &[&str]) -> Vec<String> {
    let mut texts = Vec::new();
    for key in keys {
        match job.get(*key) {
            Some(Value::Sequence(items)) => {
                for item in items {
                    match item {
                        Value::String(s) => texts.push(s.clone()),
                        Value::Mapping(_) => {
                            if let Some(Value::String(run)) = item.get("run") {
                                texts.push(run.clone());
                            }
                        }
                        _ => {}
                    }
                }
            }
            Some(Value::String(s)) => texts.push(s.clone()),
            _ => {}
        }
    }
    texts
        .iter()
        .flat_map(|t| t.lines().map(str::trim).map(str::to_owned))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// What the commands of a file were checked against.
struct Known {
    make_targets: BTreeSet<String>,
    runner_commands: BTreeSet<String>,
}

impl Known {
    fn new() -> Known {
        let makefile = std::fs::read_to_string(repository().join("Makefile")).unwrap();
        let make_targets = makefile
            .lines()
            .filter(|l| !l.starts_with(['\t', ' ', '#', '.']))
            .filter_map(|l| l.split_once(':'))
            .filter(|(name, rest)| !rest.starts_with('=') && !name.contains(['=', '$', ' ']))
            .map(|(name, _)| name.to_owned())
            .collect();
        let help = vmtest_tests::runner::command()
            .arg("--help")
            .output()
            .expect("vmtest-runner --help");
        let help = String::from_utf8_lossy(&help.stdout).into_owned();
        let runner_commands = help
            .split("Commands:")
            .nth(1)
            .expect("a Commands: section in vmtest-runner --help")
            .lines()
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        Known {
            make_targets,
            runner_commands,
        }
    }
}

/// `cargo nextest SUB --help`, or a panic saying how to get nextest.
fn nextest_help(sub: &str) -> String {
    let out = Command::new("cargo-nextest")
        .args(["nextest", sub, "--help"])
        .output()
        .expect(
            "the CI recipes run cargo-nextest, which is not installed: install it with \
             `cargo install cargo-nextest --locked`",
        );
    assert!(out.status.success(), "cargo nextest {sub} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `help` documents the long option `flag` (`--name`).
fn documents(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        let next = help[i + flag.len()..].chars().next();
        !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == '-')
    })
}

/// Checks each command of `lines`; returns the kinds seen (make, runner, nextest, fixtures).
fn check_commands(file: &str, lines: &[String], known: &Known) -> BTreeSet<&'static str> {
    let mut seen = BTreeSet::new();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, word) in words.iter().enumerate() {
            let next = words.get(i + 1).copied().unwrap_or_default();
            if *word == "make" && i == 0 {
                for target in words[1..].iter().take_while(|w| !w.starts_with('-')) {
                    assert!(
                        known.make_targets.contains(*target),
                        "{file}: `{line}`: the Makefile has no target `{target}` (it has {:?})",
                        known.make_targets
                    );
                }
                seen.insert("make");
            } else if word.ends_with("vmtest-runner") {
                assert!(
                    known.runner_commands.contains(next),
                    "{file}: `{line}`: vmtest-runner has no command `{next}` ({:?})",
                    known.runner_commands
                );
                seen.insert("runner");
            } else if (*word == "cargo" && next == "nextest") || word.ends_with("cargo-nextest") {
                // `cargo nextest SUB` or `cargo-nextest nextest SUB` (a copied binary too).
                let Some(sub) = words.get(i + 2).copied() else {
                    continue;
                };
                if next != "nextest" {
                    continue; // `cargo install cargo-nextest`, `cp "$(command -v cargo-nextest)"`
                }
                let help = nextest_help(sub);
                for flag in words[i + 3..].iter().filter(|w| w.starts_with("--")) {
                    let flag = flag.split('=').next().unwrap();
                    assert!(
                        documents(&help, flag),
                        "{file}: `{line}`: `cargo nextest {sub}` has no option {flag}"
                    );
                }
                seen.insert("nextest");
            } else if let Some(script) = word
                .find("fixtures/")
                .filter(|&at| at == 0 || word[..at].ends_with("$("))
                .map(|at| &word[at + "fixtures/".len()..])
            {
                let path = repository().join("fixtures").join(script);
                assert!(path.is_file(), "{file}: `{line}`: no {}", path.display());
                if script == "build" {
                    let name = words[i + 1..].iter().find(|w| !w.starts_with('-'));
                    let name: String = name
                        .unwrap_or(&"")
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                        .collect();
                    let recipe = repository().join("fixtures").join(&name).join("recipe");
                    assert!(recipe.is_file(), "{file}: `{line}`: no recipe {name}");
                }
                seen.insert("fixtures");
            }
        }
    }
    seen
}

/// The partition a line runs, as (index expression, total): `--partition count:K/N`.
fn partition_of(line: &str) -> Option<(String, String)> {
    // Up to the next option: a GitHub expression (`${{ matrix.partition }}`) holds spaces.
    let rest = line.split("--partition ").nth(1)?;
    let spec = rest.split(" --").next()?.trim();
    let (_, rest) = spec.split_once(':')?;
    let (index, total) = rest.rsplit_once('/')?;
    Some((index.to_owned(), total.to_owned()))
}

#[test]
fn the_github_actions_workflow_runs_commands_that_exist_over_every_partition() {
    let file = "docs/ci/github-actions.yml";
    let doc = load(file);
    let known = Known::new();
    let jobs = doc.get("jobs").and_then(Value::as_mapping).expect("jobs");
    let mut kinds = BTreeSet::new();
    let mut partitioned = 0;
    for (name, job) in jobs {
        let lines = shell_lines(job, &["steps"]);
        kinds.extend(check_commands(file, &lines, &known));
        let Some((index, total)) = lines.iter().find_map(|l| partition_of(l)) else {
            continue;
        };
        partitioned += 1;
        assert_eq!(index, "${{ matrix.partition }}", "{file}: job {name:?}");
        let total: usize = total.parse().expect("a number of partitions");
        let matrix: Vec<usize> = job
            .get("strategy")
            .and_then(|s| s.get("matrix"))
            .and_then(|m| m.get("partition"))
            .and_then(Value::as_sequence)
            .expect("strategy.matrix.partition")
            .iter()
            .map(|v| v.as_u64().expect("a partition number") as usize)
            .collect();
        let mut sorted = matrix.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            (1..=total).collect::<Vec<_>>(),
            "{file}: job {name:?}: the matrix {matrix:?} must hold every partition 1..={total} \
             exactly once"
        );
        // A failed partition must not cancel the others; the sweep and the upload always run.
        let steps = job.get("steps").and_then(Value::as_sequence).unwrap();
        let always: Vec<&Value> = steps
            .iter()
            .filter(|s| s.get("if").and_then(Value::as_str) == Some("always()"))
            .collect();
        assert!(
            always.iter().any(|s| s
                .get("run")
                .and_then(Value::as_str)
                .is_some_and(|r| r.contains("vmtest-runner sweep"))),
            "{file}: job {name:?}: no sweep step with `if: always()`"
        );
        assert!(
            always.iter().any(|s| s
                .get("with")
                .and_then(|w| w.get("path"))
                .and_then(Value::as_str)
                .is_some_and(|p| p.contains("junit.xml"))),
            "{file}: job {name:?}: no JUnit upload with `if: always()`"
        );
    }
    assert_eq!(partitioned, 1, "{file}: one partitioned job");
    for kind in ["make", "runner", "nextest", "fixtures"] {
        assert!(
            kinds.contains(kind),
            "{file}: no {kind} command was checked"
        );
    }
}

#[test]
fn the_gitlab_pipeline_runs_commands_that_exist_over_every_partition() {
    let file = "docs/ci/gitlab-ci.yml";
    let doc = load(file);
    let known = Known::new();
    let jobs = doc.as_mapping().expect("a mapping of jobs");
    let mut kinds = BTreeSet::new();
    let mut partitioned = 0;
    for (name, job) in jobs {
        let lines = shell_lines(job, &["before_script", "script", "after_script"]);
        kinds.extend(check_commands(file, &lines, &known));
        let Some((index, total)) = lines.iter().find_map(|l| partition_of(l)) else {
            continue;
        };
        partitioned += 1;
        // GitLab runs `parallel: N` copies of the job with CI_NODE_INDEX = 1..=N and
        // CI_NODE_TOTAL = N: each index once, when the line takes both from there.
        assert_eq!(
            (index.as_str(), total.as_str()),
            ("${CI_NODE_INDEX}", "${CI_NODE_TOTAL}"),
            "{file}: job {name:?}"
        );
        let parallel = job.get("parallel").and_then(Value::as_u64);
        assert!(
            parallel.is_some_and(|n| n >= 2),
            "{file}: job {name:?}: `parallel:` must be a number of partitions, 2 or more"
        );
        let junit = job
            .get("artifacts")
            .and_then(|a| a.get("reports"))
            .and_then(|r| r.get("junit"));
        assert!(junit.is_some(), "{file}: job {name:?}: no JUnit report");
        assert_eq!(
            job.get("artifacts")
                .and_then(|a| a.get("when"))
                .and_then(Value::as_str),
            Some("always"),
            "{file}: job {name:?}: the report of a failed partition must be kept"
        );
        assert!(
            shell_lines(job, &["after_script"])
                .iter()
                .any(|l| l.contains("vmtest-runner sweep")),
            "{file}: job {name:?}: the sweep belongs in after_script, which always runs"
        );
    }
    assert_eq!(partitioned, 1, "{file}: one partitioned job");
    for kind in ["make", "runner", "nextest"] {
        assert!(
            kinds.contains(kind),
            "{file}: no {kind} command was checked"
        );
    }
}

#[test]
fn the_checks_catch_what_does_not_exist() {
    let known = Known::new();
    let bad = |line: &str| {
        let lines = vec![line.to_owned()];
        std::panic::catch_unwind(|| check_commands("x.yml", &lines, &known)).is_err()
    };
    assert!(bad("make no-such-target"));
    assert!(bad("x/target/debug/vmtest-runner no-such-command"));
    assert!(bad("cargo nextest run --no-such-flag"));
    assert!(bad("fixtures/build no-such-recipe"));
    assert!(!bad("cargo nextest run --partition count:1/2 --profile ci"));
    assert!(!bad("make images"));
    assert!(!bad("echo \"k=$(fixtures/build --hash tiny)\""));
}
