//! The holdfast command line: parses arguments and calls the libraries (run, check, demo,
//! shop). Nothing of substance lives here.

#![forbid(unsafe_code)]

mod demo;

/// mimalloc: per-request allocations (headers, bodies, futures) are small and short-lived;
/// it measured faster than glibc malloc on the proxy benchmark (bench/proxy.sh).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "holdfast",
    version,
    about = "An edge gateway that keeps regional shops open through data-center failures and floods"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Against {
    Direct,
    None,
}

fn humantime_duration(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be more than 0s".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("invalid duration {s:?} ({e}): expected e.g. 60s or 2m")),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Worker threads (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
        /// Write the process id here once serving. SIGUSR2 (or `holdfast upgrade`) then
        /// upgrades the binary in place, and the file names the new process.
        #[arg(long, value_name = "FILE")]
        pid_file: Option<PathBuf>,
    },
    /// Upgrade a running gateway's binary in place, with no connection refused: signal the
    /// process the pid file names (SIGUSR2) and wait until the new binary serves. Exits 0,
    /// or 1 with the reason (the old process keeps serving).
    Upgrade {
        #[arg(long, value_name = "FILE")]
        pid_file: PathBuf,
        /// How long to wait for the new binary.
        #[arg(long, value_parser = humantime_duration, default_value = "90s")]
        timeout: std::time::Duration,
    },
    /// Validate a config file: exit 0 when valid, 1 with file:line:column otherwise.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the gateway and simulated shops for five sites on an embedded config.
    Demo {
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Replay a scenario (data-center failures, floods, surges) against a config and measure
    /// what shoppers experience, with holdfast and without it.
    Drill {
        /// A built-in scenario (christmas-2010, christmas-2010-outage, dc-blackhole, dc-refused,
        /// dc-slow, dc-errors, dc-certificate-expired, payback, flash-crowd, christmas-rush, slowloris, total-outage,
        /// origin-restart, calm, distributed-flood, carrier-nat-crowd, residential-botnet,
        /// newsletter-crowd, sale-with-botnet) or a TOML file; several separated by commas, or
        /// `all` (every built-in), each into a directory of its own under --report, with the
        /// verdicts of all of them together. Exits 1 when holdfast named an incident wrongly.
        #[arg(long, default_value = "christmas-2010")]
        scenario: String,
        /// The gateway config to drill (default: the demo's five sites in three data centers).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run length (default: the scenario's); event times given in % scale with it.
        #[arg(long, value_parser = humantime_duration)]
        duration: Option<std::time::Duration>,
        /// Where report.json and report.html are written.
        #[arg(long, default_value = "drill-report")]
        report: PathBuf,
        /// Also replay against the primary data center directly (`direct`), or not (`none`).
        #[arg(long, value_enum, default_value_t = Against::Direct)]
        against: Against,
        /// Run N points of presence (gateways) sharing one Redis that the drill starts
        /// (redis-server must be installed), with shoppers and attackers spread over them;
        /// default: the scenario's `fleet`, or one gateway.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16))]
        fleet: Option<u32>,
    },
    /// Run one simulated shop origin.
    Shop {
        #[arg(long)]
        site: String,
        #[arg(long, default_value = "en")]
        language: String,
        #[arg(long)]
        datacenter: String,
        #[arg(long)]
        listen: SocketAddr,
        /// Requests per second it can serve (beyond: queueing, then 503).
        #[arg(long)]
        capacity: Option<u32>,
        /// Added latency per response, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency: u64,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to standard
    /// output, e.g. `holdfast completions bash > /etc/bash_completion.d/holdfast`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output, e.g. `holdfast man > holdfast.1`.
    Man,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "holdfast", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            let man = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
            return match man.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("holdfast man: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Check { config } => {
            let checked =
                holdfast_gateway::config::load_file(&config).and_then(|f| holdfast_gateway::check(&f).map(|()| f));
            return match checked {
                Ok(f) => {
                    println!(
                        "{}: ok ({} sites, {} data centers)",
                        config.display(),
                        f.sites.len(),
                        f.datacenters.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Run { config, workers, pid_file } => {
            runtime(workers).and_then(|rt| rt.block_on(holdfast_gateway::run(config, pid_file)))
        }
        Command::Upgrade { pid_file, timeout } => {
            return match holdfast_gateway::upgrade::request(&pid_file, timeout) {
                Ok(o) => {
                    let new = o.new_pid.map_or("?".into(), |p| p.to_string());
                    println!("upgraded: process {} handed over to {new}, serving after {} ms", o.old_pid, o.ms);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("holdfast upgrade: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Demo { workers } => runtime(workers).and_then(|rt| rt.block_on(demo::run())),
        Command::Drill { scenario, config, duration, report, against, fleet } => runtime(None).and_then(|rt| {
            rt.block_on(async {
                let names: Vec<String> = if scenario == "all" {
                    holdfast_drill::scenario::BUILT_IN.iter().map(|(n, _)| n.to_string()).collect()
                } else {
                    scenario.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
                };
                // Every scenario loads before the first runs.
                let scenarios = names
                    .iter()
                    .map(|n| holdfast_drill::scenario::Scenario::load(n))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let text = match &config {
                    Some(p) => std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
                    None => demo::CONFIG.to_string(),
                };
                let name = config.as_ref().map_or("examples/demo.toml (embedded)".into(), |p| p.display().to_string());
                // The gateway's own loader gives the precise error for a bad config.
                holdfast_gateway::config::parse_str(&name, &text)?;
                let table: toml::Table = text.parse()?;
                let several = scenarios.len() > 1;
                let mut reports = Vec::new();
                for scenario in scenarios {
                    let report_dir = if several { report.join(scenario.name()) } else { report.clone() };
                    let opts = holdfast_drill::Options {
                        duration: duration.unwrap_or(scenario.duration),
                        scenario,
                        config: table.clone(),
                        report_dir,
                        against_direct: against == Against::Direct,
                        exe: std::env::current_exe()?,
                        progress: true,
                        fleet,
                    };
                    reports.push(holdfast_drill::run(opts).await?);
                }
                let right = if several {
                    holdfast_drill::summarize(&reports, &report)?
                } else {
                    reports.iter().all(holdfast_drill::Report::verdicts_right)
                };
                if !right {
                    anyhow::bail!("holdfast named an incident wrongly, or missed one: see the verdicts above");
                }
                Ok(())
            })
        }),
        Command::Shop { site, language, datacenter, listen, capacity, latency } => runtime(None).and_then(|rt| {
            rt.block_on(async {
                let mut cfg = holdfast_shop::ShopConfig::new(&site, &language, &datacenter);
                cfg.capacity = capacity;
                cfg.latency = std::time::Duration::from_millis(latency);
                let (addr, _shop) =
                    holdfast_shop::spawn(cfg, listen).await.with_context(|| format!("cannot listen on {listen}"))?;
                tracing::info!(%addr, site, datacenter, "shop listening");
                tokio::signal::ctrl_c().await?;
                Ok(())
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("holdfast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One worker: a single-threaded runtime (no work-stealing overhead), like one nginx worker.
fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let rt = match workers {
        Some(0) => anyhow::bail!("--workers must be at least 1"),
        Some(1) => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        Some(n) => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build()?,
        None => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
    };
    Ok(rt)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hyper=warn,h2=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
