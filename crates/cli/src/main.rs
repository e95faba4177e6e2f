//! `backforth`: the command-line tool. Only parses flags, dispatches to one
//! command module and sets the exit code; `cli` holds the clap types,
//! `commands/` one file per user command, `bench/` the benchmarks.

use backforth::config::Config;
use backforth::record::Stage;
use clap::{CommandFactory, FromArgMatches};
use cli::{Cli, Cmd};

mod bench;
mod cli;
mod commands;
mod progress;
mod provider;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
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
    for sub in [
        "run",
        "prepare",
        "backtranslate",
        "curate",
        "rewrite",
        "distill",
    ] {
        let r = reference.clone();
        cmd = cmd.mut_subcommand(sub, move |c| c.after_long_help(r));
    }
    let cli = match Cli::from_arg_matches(&cmd.get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    use commands::*;
    let res = match cli.cmd {
        Cmd::Train(a) => train::run(a),
        Cmd::Selfalign(a) => selfalign::run(a),
        Cmd::Adapter { cmd } => train::adapter(cmd),
        Cmd::Run(a) => run::run(&a.common, None, None, &a.shard),
        Cmd::Prepare(a) => prepare::run(&a),
        Cmd::Backtranslate(a) => run::run(
            &a.common,
            Some(vec![Stage::Backtranslate]),
            a.from,
            &Default::default(),
        ),
        Cmd::Curate(a) => run::run(
            &a.common,
            Some(vec![Stage::Curate]),
            a.from,
            &Default::default(),
        ),
        Cmd::Rewrite(a) => run::run(
            &a.common,
            Some(vec![Stage::Rewrite]),
            a.from,
            &Default::default(),
        ),
        Cmd::Distill(a) => run::run(
            &a.common,
            Some(vec![Stage::Distill]),
            a.from,
            &Default::default(),
        ),
        Cmd::Verify(a) => run::run(
            &a.common,
            Some(vec![Stage::Verify]),
            a.from,
            &Default::default(),
        ),
        Cmd::Config(a) => config::run(&a),
        Cmd::Generate(a) => generate::run(a),
        Cmd::Eval(a) => eval::run(a),
        Cmd::Analyze(a) => analyze::run(a),
        Cmd::Report(a) => report::run(a),
        Cmd::Checks { cmd } => checks::run(cmd),
        Cmd::Serve(a) => serve::run(a),
        Cmd::Batch { cmd } => batch::run(cmd),
        Cmd::Cache { cmd } => cache::run(cmd),
        Cmd::Plan(a) => shard::plan(a),
        Cmd::Merge(a) => shard::merge(a),
        Cmd::Status(a) => shard::status(a),
        Cmd::Slurm { cmd } => shard::slurm(cmd),
        Cmd::K8s { cmd } => shard::k8s(cmd),
        Cmd::Dedup { cmd } => shard::dedup(cmd),
        Cmd::Bench(a) => bench::engine::run(a),
        Cmd::BenchClient(a) => bench::client::run(a),
        Cmd::BenchExtract(a) => bench::extract::run(a),
        Cmd::BenchEmbed(a) => bench::embed::run(a),
        Cmd::BenchMauve(a) => bench::mauve::run(a),
        Cmd::BenchGrammar(a) => bench::grammar::run(a),
        Cmd::BenchChecks(a) => bench::checks::run(a),
    };
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
