//! `backforth`: the command-line tool. Only parses flags, dispatches to one
//! command module and sets the exit code; `cli` holds the clap types,
//! `commands/` one file per user command, `bench/` the benchmarks.

use backforth::config::Config;
use clap::{CommandFactory, FromArgMatches};
use cli::{Cli, Cmd};

mod bench;
mod cli;
mod commands;
mod progress;
mod provider;

fn main() {
    // colour only on a terminal, and never with NO_COLOR set (https://no-color.org)
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BACKFORTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,llama-cpp-2=warn")),
        )
        .init();
    let reference = format!(
        "CONFIGURATION (TOML; every key can be given with --set section.key=value). Defaults:\n\n{}",
        Config::default().to_toml().unwrap_or_default()
    );
    let mut cmd = Cli::command();
    for sub in ["run", "prepare", "config"] {
        let r = reference.clone();
        cmd = cmd.mut_subcommand(sub, move |c| c.after_long_help(r));
    }
    let cli = match Cli::from_arg_matches(&cmd.get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    use commands::*;
    // an earlier single-stage command: `run --stages NAME`
    let one_stage = |a: cli::StageArgs, name: &str| -> anyhow::Result<()> {
        let mut o = a.seeds.overrides();
        o.push(format!("run.stages=[\"{name}\"]"));
        run::run(a.common.config_with(o)?, a.common.quiet(), a.from, &Default::default())
    };
    let res = match cli.cmd {
        Cmd::Run(a) => a
            .config()
            .and_then(|c| run::run(c, a.common.quiet(), a.from.clone(), &a.shard)),
        Cmd::Prepare(a) => prepare::run(&a),
        Cmd::Train(a) => train::run(a),
        Cmd::Selfalign(a) => selfalign::run(a),
        Cmd::Adapter { cmd } => train::adapter(cmd),
        Cmd::Checks { cmd } => checks::run(cmd),
        Cmd::Generate(a) => generate::run(a),
        Cmd::Eval(a) => eval::run(a),
        Cmd::Analyze(a) => analyze::run(a),
        Cmd::Report(a) => report::run(a),
        Cmd::Shard { cmd } => shard::run(cmd),
        Cmd::Serve(a) => serve::run(a),
        Cmd::Batch { cmd } => batch::run(cmd),
        Cmd::Cache { cmd } => cache::run(cmd),
        Cmd::Config(a) => config::run(&a),
        Cmd::Bench { cmd, engine } => bench::run(cmd, engine),
        Cmd::Backtranslate(a) => one_stage(a, "backtranslate"),
        Cmd::Curate(a) => one_stage(a, "curate"),
        Cmd::Rewrite(a) => one_stage(a, "rewrite"),
        Cmd::Distill(a) => one_stage(a, "distill"),
        Cmd::Verify(a) => one_stage(a, "verify"),
        Cmd::BenchClient(a) => bench::client::run(a),
        Cmd::BenchExtract(a) => bench::extract::run(a),
        Cmd::BenchEmbed(a) => bench::embed::run(a),
        Cmd::BenchMauve(a) => bench::mauve::run(a),
        Cmd::BenchGrammar(a) => bench::grammar::run(a),
        Cmd::BenchChecks(a) => bench::checks::run(a),
        Cmd::Plan(a) => shard::plan(a),
        Cmd::Merge(a) => shard::merge(a),
        Cmd::Status(a) => shard::status(a),
        Cmd::Slurm { cmd } => launch::slurm(cmd),
        Cmd::K8s { cmd } => launch::k8s(cmd),
        Cmd::Dedup { cmd } => shard::dedup(cmd),
    };
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
