//! Command lines whose free words may start with '-': `clipkit search beach +sunset -people`.
//!
//! clap reads `-people` as an unknown option, and an argument that takes every word after
//! it (`trailing_var_arg`) would also swallow options written after the query
//! (`clipkit search cat --json`). So before clap parses, the words of such a subcommand are
//! put in order: its own options (and global ones) first, then `--`, then the free words,
//! in the order given. A word is an option when it is one of the subcommand's long or short
//! flags (`--top-k 5`, `--top-k=5`, `-h`) or an unknown `--long` word (clap then reports
//! the typo); the word after an option that takes a value is that value, even when it
//! starts with '-' (`--image-weight -0.5`). Everything after a `--` the user wrote is free.

use std::ffi::{OsStr, OsString};

use clap::Command;

/// Subcommands whose free words are query text.
const FREE_WORD_SUBCOMMANDS: [&str; 1] = ["search"];

/// `argv` with the free words of a [`FREE_WORD_SUBCOMMANDS`] subcommand moved after a `--`;
/// any other command line is returned unchanged. `cli` is the whole program's command.
pub fn free_words_last(argv: Vec<OsString>, cli: &Command) -> Vec<OsString> {
    let mut cli = cli.clone();
    cli.build();
    let Some((at, sub)) = find_subcommand(&argv, &cli) else {
        return argv;
    };
    let mut options = Vec::new();
    let mut free = Vec::new();
    let mut words = argv[at + 1..].iter();
    while let Some(word) = words.next() {
        let text = word.to_string_lossy();
        if text == "--" {
            free.extend(words.by_ref().cloned());
            break;
        }
        match option_kind(sub, &text) {
            Some(takes_value) => {
                options.push(word.clone());
                if takes_value {
                    options.extend(words.next().cloned());
                }
            }
            None => free.push(word.clone()),
        }
    }
    let mut out = argv[..=at].to_vec();
    out.extend(options);
    if !free.is_empty() {
        out.push(OsString::from("--"));
        out.extend(free);
    }
    out
}

/// Index and definition of the free-word subcommand in `argv`, when its name is the first
/// word that is neither a global option nor an option's value.
fn find_subcommand<'c>(argv: &[OsString], cli: &'c Command) -> Option<(usize, &'c Command)> {
    let mut i = 1;
    while i < argv.len() {
        let text = argv[i].to_string_lossy();
        match option_kind(cli, &text) {
            Some(takes_value) => i += if takes_value { 2 } else { 1 },
            None => {
                return FREE_WORD_SUBCOMMANDS
                    .contains(&text.as_ref())
                    .then(|| cli.find_subcommand(OsStr::new(text.as_ref())))
                    .flatten()
                    .map(|sub| (i, sub));
            }
        }
    }
    None
}

/// `Some(takes_a_separate_value)` when `word` is an option of `cmd`, `None` when it is a
/// free word. Unknown `--long` words count as options (without a value) so clap names them.
fn option_kind(cmd: &Command, word: &str) -> Option<bool> {
    if let Some(long) = word.strip_prefix("--") {
        let (name, inline_value) = match long.split_once('=') {
            Some((name, _)) => (name, true),
            None => (long, false),
        };
        let takes_value = cmd
            .get_arguments()
            .find(|a| {
                a.get_long() == Some(name)
                    || a.get_all_aliases().is_some_and(|al| al.contains(&name))
            })
            .is_some_and(|a| a.get_action().takes_values());
        return Some(takes_value && !inline_value);
    }
    let mut chars = word.strip_prefix('-')?.chars();
    let (Some(short), None) = (chars.next(), chars.next()) else {
        return None;
    };
    cmd.get_arguments()
        .find(|a| a.get_short() == Some(short))
        .map(|a| a.get_action().takes_values())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> Command {
        Command::new("clipkit")
            .arg(clap::Arg::new("threads").long("threads").global(true))
            .subcommand(
                Command::new("search")
                    .arg(clap::Arg::new("query").num_args(0..))
                    .arg(clap::Arg::new("top-k").long("top-k"))
                    .arg(clap::Arg::new("weight").long("image-weight"))
                    .arg(
                        clap::Arg::new("json")
                            .long("json")
                            .action(clap::ArgAction::SetTrue),
                    ),
            )
            .subcommand(Command::new("index").arg(clap::Arg::new("dirs").num_args(0..)))
    }

    fn run(line: &str) -> String {
        let argv = line.split(' ').map(OsString::from).collect();
        let out = free_words_last(argv, &cli());
        out.iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn hyphen_words_become_free_words_and_options_stay_options() {
        assert_eq!(
            run("clipkit search beach +sunset -people"),
            "clipkit search -- beach +sunset -people"
        );
        assert_eq!(
            run("clipkit --threads 2 search beach -people --top-k 3 --json -hills"),
            "clipkit --threads 2 search --top-k 3 --json -- beach -people -hills"
        );
        assert_eq!(
            run("clipkit search --image-weight -0.5 cat --top-k=4"),
            "clipkit search --image-weight -0.5 --top-k=4 -- cat"
        );
    }

    #[test]
    fn a_double_dash_the_user_wrote_ends_the_options() {
        assert_eq!(
            run("clipkit search --top-k 3 -- -people --json"),
            "clipkit search --top-k 3 -- -people --json"
        );
    }

    #[test]
    fn unknown_long_options_are_left_for_clap_to_report() {
        assert_eq!(
            run("clipkit search cat --top_k 3"),
            "clipkit search --top_k -- cat 3"
        );
    }

    #[test]
    fn other_commands_are_unchanged() {
        assert_eq!(run("clipkit index -x dir"), "clipkit index -x dir");
        assert_eq!(run("clipkit search"), "clipkit search");
    }
}
