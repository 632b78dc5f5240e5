//! holdfast-drill: replays a scenario (failures, floods, surges on a timeline) against a
//! gateway config with simulated shops, real shoppers and real attackers on loopback, and
//! measures what the shoppers experienced; optionally the same against the primary data
//! center directly (what customers saw in 2010), side by side.
//!
//! It drives the gateway only from outside: it runs `holdfast run` as a child process on a
//! rewritten copy of the config (the drill's own origins and free ports), sends traffic to
//! its listener, and reads its admin API.

#![forbid(unsafe_code)]

mod attackers;
mod client;
mod gateway;
mod measure;
mod redis;
mod report;
pub mod scenario;
mod shoppers;
mod topology;
mod verdicts;

use anyhow::Context;
use holdfast_shop::Fault;
use measure::Recorder;
use scenario::{Action, FailMode, Scenario};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What to drill, how, and where the report goes.
pub struct Options {
    /// The scenario to replay.
    pub scenario: Scenario,
    /// The gateway config (TOML) whose sites and data centers are drilled.
    pub config: toml::Table,
    /// How long one run takes.
    pub duration: Duration,
    /// Where report.html and report.json are written (and the gateway's config and log).
    pub report_dir: PathBuf,
    /// Also run the scenario with shoppers going straight to each site's primary data center.
    pub against_direct: bool,
    /// The holdfast binary, run as `holdfast run --config …`.
    pub exe: PathBuf,
    /// Show a live progress line.
    pub progress: bool,
    /// Points of presence: this many gateways share one Redis (started by the drill), and
    /// shoppers and attackers are spread over them as DNS or anycast would. None: the
    /// scenario's `fleet`, or one gateway on its own.
    pub fleet: Option<u32>,
}

/// Whom the shoppers go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Mode {
    /// Through holdfast.
    Holdfast,
    /// Straight to each site's primary data center (what customers saw in 2010).
    Direct,
}

/// A scenario event as it happened in a run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EventRecord {
    pub(crate) t: f64,
    pub(crate) what: String,
    #[serde(skip)]
    pub(crate) action: Option<Action>,
}

/// Everything measured in one run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunResult {
    pub(crate) mode: Mode,
    pub(crate) summary: BTreeMap<String, measure::SiteSummary>,
    pub(crate) events: Vec<EventRecord>,
    pub(crate) orders_placed: u64,
    pub(crate) duplicate_orders: u64,
    pub(crate) flood_sent: u64,
    pub(crate) flood_reached_origins: u64,
    pub(crate) gateway_peak_rss_mib: Option<f64>,
    pub(crate) gateway_mean_cpu_percent: Option<f64>,
    /// Seconds from the first `recover` until each affected site's preferred data center
    /// served most of its traffic again.
    pub(crate) back_on_preferred_after_s: Option<f64>,
    pub(crate) seconds: Vec<measure::Second>,
    /// The gateway's /status.json at the end of the run.
    pub(crate) gateway_status: Option<serde_json::Value>,
    /// The incidents holdfast named, judged against the scenario's ground truth.
    pub(crate) verdicts: Option<verdicts::Verdicts>,
}

/// The drill's result: every run's measurements (written as report.json and report.html).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub(crate) scenario: String,
    pub(crate) description: String,
    pub(crate) duration_s: f64,
    pub(crate) runs: Vec<RunResult>,
}

impl Report {
    /// holdfast named what the scenario caused and nothing else (true when no gateway ran).
    pub fn verdicts_right(&self) -> bool {
        self.runs.iter().filter_map(|r| r.verdicts.as_ref()).all(|v| v.passed)
    }
}

/// The verdicts of several scenarios together: each one's, the times to verdict, and the
/// confusion matrix over all of them; printed, and written as `summary.json` and
/// `summary.html` into `dir`. True when every verdict was right.
pub fn summarize(reports: &[Report], dir: &std::path::Path) -> anyhow::Result<bool> {
    report::summary(reports, dir)?;
    Ok(reports.iter().all(Report::verdicts_right))
}

/// Runs the drill: holdfast, then (optionally) direct. Writes the report files.
pub async fn run(opts: Options) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&opts.report_dir)
        .with_context(|| format!("cannot create the report directory {}", opts.report_dir.display()))?;
    let mut runs = vec![run_mode(&opts, Mode::Holdfast).await?];
    if opts.against_direct {
        runs.push(run_mode(&opts, Mode::Direct).await?);
    }
    let report = Report {
        scenario: opts.scenario.name.clone(),
        description: opts.scenario.description.clone(),
        duration_s: opts.duration.as_secs_f64(),
        runs,
    };
    report::write(&report, &opts.report_dir)?;
    Ok(report)
}

/// Runs the scenario once in one mode (no report files).
pub(crate) async fn run_mode(opts: &Options, mode: Mode) -> anyhow::Result<RunResult> {
    let sc = &opts.scenario;
    let sites = topology::sites(&opts.config)?;
    if let Some(s) = sites.iter().find(|s| s.pools.iter().any(|(_, o)| o.is_empty())) {
        anyhow::bail!("site {} has a pool without origins", s.name);
    }
    let tls = if sc.origins.tls { Some(topology::OriginPki::new(&opts.report_dir)?) } else { None };
    let origins = Arc::new(topology::Origins::start(&sites, sc.origins.capacity, tls).await?);
    let mut gws = Vec::new();
    let mut redis = None;
    let targets: Vec<shoppers::Target> = match mode {
        Mode::Holdfast => {
            let cfg = origins.rewrite_config(&opts.config);
            let pops = opts.fleet.or(sc.fleet).unwrap_or(1).clamp(1, 16);
            if pops > 1 {
                redis = Some(tokio::task::spawn_blocking(redis::RedisProcess::start).await??);
            }
            for i in 1..=pops {
                let (exe, mut cfg, mut dir) = (opts.exe.clone(), cfg.clone(), opts.report_dir.clone());
                if let Some(r) = &redis {
                    // One point of presence of the fleet, in a directory of its own.
                    let mut fleet = toml::Table::new();
                    fleet.insert("redis".into(), r.url().into());
                    fleet.insert("instance".into(), format!("pop-{i}").into());
                    cfg.insert("fleet".into(), fleet.into());
                    dir = dir.join(format!("pop-{i}"));
                    std::fs::create_dir_all(&dir)?;
                }
                gws.push(tokio::task::spawn_blocking(move || gateway::GatewayProcess::start(&exe, &cfg, &dir)).await??);
            }
            let http: Vec<_> = gws.iter().map(|g| g.http).collect();
            sites
                .iter()
                .map(|s| shoppers::Target { site: s.name.clone(), host: s.host.clone(), addrs: http.clone() })
                .collect()
        }
        Mode::Direct => sites
            .iter()
            .map(|s| shoppers::Target {
                site: s.name.clone(),
                host: s.host.clone(),
                addrs: origins.addrs(&s.name, &s.pools[0].0),
            })
            .collect(),
    };
    let gw = Arc::new(Mutex::new(gws));
    let timeline = sc.timeline(opts.duration);
    let max_factor = timeline.iter().filter_map(|(_, e)| e.factor).fold(1.0f64, f64::max);
    let normal = sc.shoppers.count;
    let max_shoppers = (f64::from(normal) * max_factor).ceil() as u32;

    let start = Instant::now();
    let start_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    // Any point of presence shows the fleet's incidents: the first one's are read.
    let admin = gw.lock().ok().and_then(|g| g.first().map(|g| g.admin));
    let rec = Arc::new(Recorder::new(start));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (active_tx, active_rx) = watch::channel(normal);
    let plan = Arc::new(shoppers::Plan {
        targets,
        addresses: sc.shoppers.addresses,
        newsletter_from: (sc.shoppers.surge_landing == scenario::Landing::Newsletter).then_some(normal),
        think: sc.shoppers.think,
        checkout_share: sc.shoppers.checkout_share,
        timeout: sc.shoppers.timeout,
    });
    let mut tasks = Vec::new();
    for id in 0..max_shoppers {
        tasks.push(tokio::spawn(shoppers::shopper(id, plan.clone(), rec.clone(), active_rx.clone(), stop_rx.clone())));
    }

    // Once a second: flood counters, gateway CPU and memory, the incidents named, the
    // progress line.
    let bar = progress_bar(opts, mode);
    let sampler = {
        let (rec, gw, stop, bar) = (rec.clone(), gw.clone(), stop_rx.clone(), bar.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut told: Vec<String> = Vec::new();
            while !*stop.borrow() {
                tick.tick().await;
                if let Some(admin) = admin {
                    let body = tokio::task::spawn_blocking(move || gateway::admin_get(admin, "/incidents.json"));
                    for n in verdicts::parse(&body.await.ok().flatten().unwrap_or_default(), start_ms) {
                        if !told.contains(&n.id) {
                            let line = format!("  {:>5.1}s  holdfast names {}: {}", n.detected_s, n.kind, n.summary);
                            say(bar.as_ref(), line);
                            told.push(n.id);
                        }
                    }
                }
                // The fleet's CPU and memory: every gateway's, added up.
                let (cpu, rss) = gw
                    .lock()
                    .ok()
                    .map(|mut gws| {
                        gws.iter_mut()
                            .map(|g| g.sample())
                            .fold((None, None), |(c, r), (gc, gr)| (add(c, gc), add(r, gr)))
                    })
                    .unwrap_or((None, None));
                rec.sample(Instant::now(), cpu, rss);
                if let Some(bar) = &bar {
                    bar.set_position(start.elapsed().as_secs());
                    bar.set_message(match (cpu, rss) {
                        (Some(c), Some(r)) => format!("gateway {c:.0}% CPU, {r:.0} MiB"),
                        _ => String::new(),
                    });
                }
            }
        })
    };

    // The timeline.
    let mut events = Vec::new();
    let mut flood_stops: Vec<watch::Sender<bool>> = Vec::new();
    for (at, ev) in &timeline {
        tokio::time::sleep_until((start + *at).into()).await;
        let what = apply(ev, &origins, &sites, &plan, &rec, &active_tx, normal, &mut flood_stops, mode);
        say(bar.as_ref(), format!("  {:>5.1}s  {what}", at.as_secs_f64()));
        events.push(EventRecord { t: at.as_secs_f64(), what, action: Some(ev.action) });
    }
    tokio::time::sleep_until((start + opts.duration).into()).await;
    let _ = stop_tx.send(true);
    for f in &flood_stops {
        let _ = f.send(true);
    }
    // Shoppers finish their current request; one bound for all of them.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    let _ = sampler.await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }

    let seconds = rec.finish(opts.duration);
    let first_fault = timeline.iter().find(|(_, e)| e.action == Action::Fail).map(|(t, _)| *t);
    let summary = measure::summarize(&seconds, first_fault);
    let (orders_placed, duplicate_orders) = origins.orders();
    let flood_sent = seconds.iter().map(|s| s.flood_sent).sum();
    let cpu: Vec<f64> = seconds.iter().filter_map(|s| s.gateway_cpu_percent).collect();
    let gateway_status = gw.lock().ok().and_then(|g| g.first().and_then(|g| g.admin_get("/status.json")));
    let incidents = gw.lock().ok().and_then(|g| g.first().and_then(|g| g.admin_get("/incidents.json")));
    if let Some(body) = &incidents {
        // The incidents as holdfast gave them, evidence and all, beside the report.
        let _ = std::fs::write(opts.report_dir.join("incidents.json"), body);
    }
    let verdicts = incidents.map(|body| verdicts::judge(&sc.expects, verdicts::parse(&body, start_ms), opts.duration));
    let gws = gw.lock().map(|mut g| std::mem::take(&mut *g)).unwrap_or_default();
    tokio::task::spawn_blocking(move || gws.into_iter().for_each(gateway::GatewayProcess::stop)).await?;
    drop(redis);
    let recover_at = timeline.iter().find(|(_, e)| e.action == Action::Recover).map(|(t, _)| t.as_secs_f64());
    let result = RunResult {
        mode,
        back_on_preferred_after_s: recover_at.and_then(|r| back_on_preferred(&seconds, &sites, r)),
        summary,
        events,
        orders_placed,
        duplicate_orders,
        flood_sent,
        flood_reached_origins: origins.flood_requests(),
        gateway_peak_rss_mib: seconds.iter().filter_map(|s| s.gateway_rss_mib).reduce(f64::max),
        gateway_mean_cpu_percent: (!cpu.is_empty()).then(|| cpu.iter().sum::<f64>() / cpu.len() as f64),
        seconds,
        gateway_status: gateway_status.and_then(|s| serde_json::from_str(&s).ok()),
        verdicts,
    };
    // The origins of this run go away (their listeners close).
    origins.set_fault("*", Fault::Refused);
    Ok(result)
}

#[allow(clippy::too_many_arguments)]
fn apply(
    ev: &scenario::Event,
    origins: &topology::Origins,
    sites: &[topology::SiteTopo],
    plan: &shoppers::Plan,
    rec: &Arc<Recorder>,
    active: &watch::Sender<u32>,
    normal: u32,
    flood_stops: &mut Vec<watch::Sender<bool>>,
    mode: Mode,
) -> String {
    let dc = ev.datacenter.clone().unwrap_or_default();
    match ev.action {
        Action::Fail => {
            let fault = match ev.mode {
                Some(FailMode::Refused) => Fault::Refused,
                Some(FailMode::Blackhole) => Fault::Blackhole,
                Some(FailMode::Slow) => Fault::Slow(ev.delay.unwrap_or(Duration::from_secs(3))),
                Some(FailMode::Errors) => Fault::Errors(ev.share.unwrap_or(0.5)),
                Some(FailMode::ExpiredCertificate) => Fault::ExpiredCertificate,
                None => Fault::None,
            };
            origins.set_fault_of(&dc, ev.site.as_deref(), ev.origins, fault);
            match (ev.origins, ev.site.as_deref()) {
                (None, None) => format!("data center {dc} fails ({fault:?})"),
                (n, site) => format!(
                    "{} origin(s) of {} in {dc} fail ({fault:?})",
                    n.map_or("all".to_string(), |n| n.to_string()),
                    site.unwrap_or("every site")
                ),
            }
        }
        Action::Recover => {
            origins.set_fault_of(&dc, ev.site.as_deref(), None, Fault::None);
            match ev.site.as_deref() {
                None => format!("data center {dc} recovers"),
                Some(site) => format!("{site}'s origins in {dc} recover"),
            }
        }
        Action::Flood => {
            let site = ev.site.as_deref().and_then(|n| sites.iter().find(|s| s.name == n)).unwrap_or(&sites[0]);
            let targets =
                plan.targets.iter().find(|t| t.site == site.name).map(|t| t.addrs.clone()).unwrap_or_default();
            if targets.is_empty() {
                return "flood skipped: no target".into();
            }
            let spread = targets.len();
            let flood = attackers::Flood {
                kind: ev.kind.unwrap_or(scenario::FloodKind::Loic),
                sources: ev.sources.unwrap_or(1000),
                rate: ev.rate.unwrap_or(100),
                host: site.host.clone(),
                path: ev.path.clone().unwrap_or_else(|| "/".into()),
                targets,
            };
            let (tx, rx) = watch::channel(false);
            flood_stops.push(tx);
            let what = format!(
                "{:?} flood: {} sources, {}/s at {}{} ({})",
                flood.kind,
                flood.sources,
                flood.rate,
                flood.host,
                flood.path,
                match (mode, spread) {
                    (Mode::Holdfast, 1) => "through holdfast".to_string(),
                    (Mode::Holdfast, n) => format!("spread over {n} points of presence"),
                    _ => "at the origin".to_string(),
                }
            );
            tokio::spawn(attackers::run(flood, rec.clone(), rx));
            what
        }
        Action::StopFlood => {
            for f in flood_stops.iter() {
                let _ = f.send(true);
            }
            "floods stop".into()
        }
        Action::Surge => {
            let n = (f64::from(normal) * ev.factor.unwrap_or(1.0)).round() as u32;
            active.send_replace(n);
            format!("surge: {n} shoppers")
        }
        Action::Calm => {
            active.send_replace(normal);
            format!("calm: {normal} shoppers")
        }
    }
}

/// The sum of two measurements, either of which may be missing.
fn add(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

/// Seconds after `recover_at` until, summed over the sites, the preferred data center served
/// most successful requests in a second again.
fn back_on_preferred(seconds: &[measure::Second], sites: &[topology::SiteTopo], recover_at: f64) -> Option<f64> {
    let from = recover_at.floor() as usize;
    for s in seconds.iter().skip(from) {
        let (mut preferred, mut total) = (0u32, 0u32);
        for site in sites {
            if let Some(ss) = s.sites.get(&site.name) {
                total += ss
                    .by_datacenter
                    .iter()
                    .filter(|(dc, _)| !dc.starts_with(shoppers::CACHE))
                    .map(|(_, n)| n)
                    .sum::<u32>();
                preferred += ss.by_datacenter.get(&site.pools[0].0).copied().unwrap_or(0);
            }
        }
        if total > 0 && preferred * 2 > total {
            return Some((f64::from(s.t) - recover_at).max(0.0));
        }
    }
    None
}

/// A line as the run goes: above the progress bar, or plainly when there is none to draw
/// (not a terminal). Quiet when the run shows no progress (tests).
fn say(bar: Option<&indicatif::ProgressBar>, line: String) {
    match bar {
        Some(bar) if !bar.is_hidden() => bar.println(line),
        Some(_) => println!("{line}"),
        None => {}
    }
}

fn progress_bar(opts: &Options, mode: Mode) -> Option<indicatif::ProgressBar> {
    if !opts.progress {
        return None;
    }
    let bar = indicatif::ProgressBar::new(opts.duration.as_secs());
    let style = indicatif::ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos:>3}/{len}s {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(match mode {
        Mode::Holdfast => "holdfast",
        Mode::Direct => "direct",
    });
    Some(bar)
}

#[cfg(test)]
mod tests;
