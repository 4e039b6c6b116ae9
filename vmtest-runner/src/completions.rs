//! `vmtest-runner completions SHELL`: completion scripts made from the command line's own
//! definition, so they name exactly the commands and options `--help` does.
//!
//! They complete subcommands, each subcommand's options, the values of options that have a
//! fixed set (`completions bash|zsh|fish`), and file names for `--file`; VM and environment
//! names are not completed (they change while the shell runs).

use std::fmt::Write as _;

use clap::{Command, ValueEnum};

/// A shell with a completion script.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Shell {
    /// `source <(vmtest-runner completions bash)`, e.g. in ~/.bashrc.
    Bash,
    /// `source <(vmtest-runner completions zsh)`, e.g. in ~/.zshrc (through bashcompinit).
    Zsh,
    /// `vmtest-runner completions fish > ~/.config/fish/completions/vmtest-runner.fish`.
    Fish,
}

/// Prints the script for `shell`.
pub(crate) fn print(shell: Shell, cli: &mut Command) {
    cli.build();
    let script = match shell {
        Shell::Bash => bash(cli),
        Shell::Zsh => format!(
            "# vmtest-runner completion for zsh, through bash's completion (bashcompinit)\n\
             autoload -U +X bashcompinit && bashcompinit\n{}",
            bash(cli)
        ),
        Shell::Fish => fish(cli),
    };
    print!("{script}");
}

/// The visible subcommands, with their long options and the fixed values of their positionals.
struct Sub {
    name: String,
    about: String,
    options: Vec<String>,
    values: Vec<String>,
    /// Its own subcommands (`images pull|list|...`).
    subs: Vec<Sub>,
}

fn subs(cmd: &Command) -> Vec<Sub> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| Sub {
            name: s.get_name().to_owned(),
            about: s
                .get_about()
                .map(|a| a.to_string())
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
            options: std::iter::once("--help".to_owned())
                .chain(
                    s.get_opts()
                        .filter(|a| !a.is_hide_set())
                        .filter_map(|a| a.get_long().map(|l| format!("--{l}"))),
                )
                .collect(),
            values: s
                .get_positionals()
                .flat_map(|a| a.get_possible_values())
                .map(|v| v.get_name().to_owned())
                .collect(),
            subs: subs(s),
        })
        .collect()
}

fn bash(cli: &Command) -> String {
    let subs = subs(cli);
    let top: Vec<&str> = subs.iter().map(|s| s.name.as_str()).collect();
    let mut cases = String::new();
    for sub in &subs {
        let mut words: Vec<String> = sub.options.clone();
        words.extend(sub.values.iter().cloned());
        words.extend(sub.subs.iter().map(|s| s.name.clone()));
        let _ = writeln!(
            cases,
            "        {}) words=\"{}\" ;;",
            sub.name,
            words.join(" ")
        );
    }
    format!(
        r#"# vmtest-runner completion for bash: source <(vmtest-runner completions bash)
_vmtest_runner() {{
    local cur prev sub words
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    if [[ "$prev" == "--file" ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
        return
    fi
    sub="${{COMP_WORDS[1]}}"
    if [[ $COMP_CWORD -eq 1 ]]; then
        words="--help --version {top}"
    else
        case "$sub" in
{cases}        *) words="" ;;
        esac
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -F _vmtest_runner vmtest-runner
"#,
        top = top.join(" "),
    )
}

fn fish(cli: &Command) -> String {
    let subs = subs(cli);
    let names: Vec<&str> = subs.iter().map(|s| s.name.as_str()).collect();
    let mut out =
        String::from("# vmtest-runner completion for fish\ncomplete -c vmtest-runner -f\n");
    for sub in &subs {
        let _ = writeln!(
            out,
            "complete -c vmtest-runner -n 'not __fish_seen_subcommand_from {}' -a {} -d '{}'",
            names.join(" "),
            sub.name,
            sub.about.replace('\'', "\\'")
        );
        let when = format!("__fish_seen_subcommand_from {}", sub.name);
        for option in &sub.options {
            let long = option.trim_start_matches("--");
            let files = if long == "file" { " -r -F" } else { "" };
            let _ = writeln!(
                out,
                "complete -c vmtest-runner -n '{when}' -l {long}{files}"
            );
        }
        for value in sub.values.iter().chain(sub.subs.iter().map(|s| &s.name)) {
            let _ = writeln!(out, "complete -c vmtest-runner -n '{when}' -a {value}");
        }
    }
    out
}
