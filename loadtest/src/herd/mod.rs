//! `loadtest herd`: the waiting room alone, against its floors, in one run.
//!
//! N fans join one high-demand event whose sale is open but whose admission is so slow (one a
//! minute, one active shopper) that they all stay waiting. Then phases of `--seconds` each at
//! `--connections`: the floors (nginx `return 200`; a bare 200 server, direct and behind
//! nginx; `EVALSHA` of `return 1` in redis-benchmark), the status read direct to the
//! waiting-room instance(s) and through the gateway, and S push streams through the gateway.
//! Each phase records its rate and latency, the CPU every process spent per request (from
//! `/proc`, processes found by their listening port) and Redis's calls per second (`INFO
//! commandstats`). Last, the Redis bytes the event holds per waiting fan and how exact the
//! answered positions are. Written to `herd.md` and `herd.json` in the report directory.
//!
//! A manual benchmark, not a test: the machine may be shared, so the absolute figures are
//! noisy; the ratios to the floors measured in the same run are what count.

mod floors;
mod procs;
mod push;
pub(crate) mod redis_stats;
mod report;
mod wrk;

use std::{
    collections::{BTreeMap, HashMap},
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use redis::aio::MultiplexedConnection;
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::setup;

pub use floors::bare_200;

#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct HerdArgs {
    /// Fans joined to the event (up to 1,000,000).
    #[arg(long, default_value_t = 20_000)]
    pub fans: usize,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Connections of the request phases (wrk `-c`, redis-benchmark `-c`).
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Push streams held open through the gateway in the push phase.
    #[arg(long, default_value_t = 2_000)]
    pub streams: usize,
    /// Joins in flight at once.
    #[arg(long, default_value_t = 100)]
    pub join_concurrency: usize,
    /// A waiting-room instance's own address (repeat for several; joins and direct reads are
    /// spread over all).
    #[arg(
        long = "waiting-room-url",
        env = "WAITING_ROOM_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8081"
    )]
    pub waiting_room_urls: Vec<String>,
    /// Fans whose answered position is compared with Redis's exact one (the first 1,000 in
    /// line and the rest spread over the line).
    #[arg(long, default_value_t = 2_000)]
    pub accuracy_sample: usize,
    /// Queue tokens wrk cycles through at most (each wrk thread loads them all), spread
    /// evenly over the line.
    #[arg(long, default_value_t = 100_000)]
    pub wrk_tokens: usize,
    /// Where herd.md, herd.json, the tokens and the floor nginx go.
    #[arg(long, env = "LOADTEST_REPORT_DIR", default_value = ".run/loadtest")]
    pub report_dir: PathBuf,
    #[arg(long, env = "KEYS_DIR", default_value = ".run/keys")]
    pub keys_dir: PathBuf,
    #[arg(long, default_value = "organizer@example.test")]
    pub organizer_email: String,
    #[arg(long, default_value = "organizer-pass-123")]
    pub organizer_password: String,
    /// The command line to print in the report (infra/dev passes its own).
    #[arg(long, env = "LOADTEST_COMMAND")]
    pub command: Option<String>,
}

/// The processes a phase charges CPU to, by the name the report gives them.
struct Groups {
    by_name: Vec<(&'static str, Vec<u32>)>,
}

/// One reading at a phase's edge.
struct Sample {
    at: Instant,
    cpu: Vec<f64>,
    me: procs::SelfTimes,
    redis: redis_stats::CommandStats,
}

impl Groups {
    async fn sample(&self, redis: &mut MultiplexedConnection) -> anyhow::Result<Sample> {
        Ok(Sample {
            at: Instant::now(),
            cpu: self
                .by_name
                .iter()
                .map(|(_, pids)| procs::cpu_seconds(pids))
                .collect(),
            me: procs::self_times(),
            redis: redis_stats::commandstats(redis).await?,
        })
    }
}

/// What a phase's load generator reports.
#[derive(Debug, Clone, Default)]
struct Load {
    requests: u64,
    errors: u64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    /// The generator's own duration when it knows it better than our clock (wrk).
    seconds: Option<f64>,
    streams_open: u64,
    note: Option<String>,
}

impl From<wrk::WrkResult> for Load {
    fn from(r: wrk::WrkResult) -> Self {
        Load {
            requests: r.requests,
            errors: r.errors(),
            p50_ms: Some(r.p50_us as f64 / 1000.0),
            p99_ms: Some(r.p99_us as f64 / 1000.0),
            seconds: Some(r.duration_us as f64 / 1e6),
            ..Load::default()
        }
    }
}

/// One phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub key: &'static str,
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Requests (push: status frames) per second.
    pub rate: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// CPU µs per request of each process group (`generator`: wrk, redis-benchmark or this
    /// process).
    pub cpu_us_per_request: BTreeMap<String, f64>,
    /// Cores each group kept busy over the phase.
    pub cores: BTreeMap<String, f64>,
    pub redis_calls: redis_stats::CallRate,
    /// Push streams open through the phase (push only).
    pub streams_open: u64,
    pub note: Option<String>,
}

async fn measured<F>(
    key: &'static str,
    name: &str,
    groups: &Groups,
    redis: &mut MultiplexedConnection,
    load: F,
) -> anyhow::Result<Phase>
where
    F: std::future::Future<Output = anyhow::Result<Load>>,
{
    let (phase, ()) =
        measured_with(key, name, groups, redis, async { Ok((load.await?, ())) }).await?;
    Ok(phase)
}

/// Runs the phase's load between two samples; the load may hand back what it produced.
async fn measured_with<F, T>(
    key: &'static str,
    name: &str,
    groups: &Groups,
    redis: &mut MultiplexedConnection,
    load: F,
) -> anyhow::Result<(Phase, T)>
where
    F: std::future::Future<Output = anyhow::Result<(Load, T)>>,
{
    println!("==> phase: {name}");
    let before = groups.sample(redis).await?;
    let (load, produced) = load.await.with_context(|| format!("phase {name}"))?;
    let after = groups.sample(redis).await?;
    let wall = after.at.duration_since(before.at).as_secs_f64();
    let seconds = load.seconds.unwrap_or(wall);
    let per_request = |cpu: f64| {
        if load.requests == 0 {
            f64::NAN
        } else {
            cpu * 1e6 / load.requests as f64
        }
    };
    let mut cpu_us = BTreeMap::new();
    let mut cores = BTreeMap::new();
    for (i, (group, _)) in groups.by_name.iter().enumerate() {
        let used = (after.cpu[i] - before.cpu[i]).max(0.0);
        cpu_us.insert(group.to_string(), per_request(used));
        cores.insert(group.to_string(), used / wall);
    }
    let generator = (after.me.own - before.me.own) + (after.me.children - before.me.children);
    cpu_us.insert("generator".into(), per_request(generator.max(0.0)));
    cores.insert("generator".into(), generator.max(0.0) / wall);
    let phase = Phase {
        key,
        name: name.to_string(),
        requests: load.requests,
        errors: load.errors,
        seconds,
        rate: if seconds > 0.0 {
            load.requests as f64 / seconds
        } else {
            0.0
        },
        p50_ms: load.p50_ms,
        p99_ms: load.p99_ms,
        cpu_us_per_request: cpu_us,
        cores,
        redis_calls: redis_stats::call_rate(&before.redis, &after.redis, wall),
        streams_open: load.streams_open,
        note: load.note,
    };
    println!(
        "    {:.0}/s, {} errors, Redis {:.0} calls/s",
        phase.rate, phase.errors, phase.redis_calls.total_per_s
    );
    Ok((phase, produced))
}

/// Everything a run measured, as herd.json holds it.
#[derive(Debug, Clone, Serialize)]
pub struct Herd {
    pub command: String,
    pub run_id: String,
    pub event_id: String,
    pub fans: usize,
    pub joined: usize,
    pub join_errors: usize,
    pub waiting_room_urls: Vec<String>,
    pub gateway_url: String,
    pub redis_url: String,
    pub connections: usize,
    pub seconds: u64,
    pub streams: usize,
    pub phases: Vec<Phase>,
    pub redis_bytes_total: u64,
    pub redis_bytes_per_fan: f64,
    pub redis_keys: Vec<(String, u64)>,
    pub accuracy: redis_stats::Accuracy,
    pub loadavg: String,
    pub notes: Vec<String>,
}

pub async fn run(gateway: &str, args: HerdArgs) -> anyhow::Result<()> {
    ensure!(
        (1..=1_000_000).contains(&args.fans),
        "--fans is 1 to 1,000,000"
    );
    let instances: Vec<String> = args
        .waiting_room_urls
        .iter()
        .map(|u| u.trim_end_matches('/').to_string())
        .collect();
    ensure!(!instances.is_empty(), "no --waiting-room-url");
    let command = args.command.clone().unwrap_or_else(|| {
        std::env::args()
            .map(|a| shell_word(&a))
            .collect::<Vec<_>>()
            .join(" ")
    });
    std::fs::create_dir_all(&args.report_dir)
        .with_context(|| format!("creating {}", args.report_dir.display()))?;
    let pg = shared::config::PostgresConfig::from_env()?;
    let db = PgPoolOptions::new()
        .max_connections(4)
        .connect(pg.url.expose())
        .await
        .context("connecting to Postgres (DATABASE_URL)")?;
    let redis_config = shared::config::RedisConfig::from_env()?;
    let redis_url = redis_config.url.expose().to_string();
    let mut redis = redis::Client::open(redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis (REDIS_URL)")?;
    let keys = shared::cache::RedisKeys::new(redis_config.key_prefix.clone());
    let run_id = Uuid::new_v4().simple().to_string()[..8].to_string();
    let mut notes = Vec::new();
    println!(
        "==> herd {run_id}: {} fans, {} s phases at {} connections, {} instance(s)",
        args.fans,
        args.seconds,
        args.connections,
        instances.len()
    );

    // The event and its fans.
    let started = Instant::now();
    let fans = setup::fans(
        &db,
        &args.keys_dir,
        &format!("herd-{run_id}"),
        args.fans,
        Duration::from_secs(3600),
    )
    .await?;
    println!(
        "==> {} fans inserted and signed in {:.1} s",
        fans.len(),
        started.elapsed().as_secs_f64()
    );
    let org = setup::organizer(gateway, &args.organizer_email, &args.organizer_password).await?;
    let event = setup::event(
        gateway,
        &org,
        &format!("Herd {run_id}"),
        100,
        Duration::ZERO,
        120,
    )
    .await?;
    // One admission a minute and one active shopper: the line stands still for the run.
    setup::demand_mode(gateway, &org, &event.id, 1, 1).await?;
    println!("==> event {} (high demand, admitting 1/min)", event.id);

    // The processes each phase charges: by the port they listen on.
    let bare = floors::Bare::start().await?;
    let nginx = floors::Nginx::start(&args.report_dir.join("herd-nginx"), bare.addr).await?;
    let gateway_port = url_port(gateway).context("the gateway URL has no port")?;
    let instance_ports: Vec<u16> = instances
        .iter()
        .map(|u| url_port(u).with_context(|| format!("{u} has no port")))
        .collect::<anyhow::Result<_>>()?;
    let redis_port = crate::limits::redis_host_port(&redis_url).1;
    let groups = Groups {
        by_name: vec![
            (
                "nginx",
                procs::listening_pids(&[gateway_port, nginx.ok_port, nginx.proxy_port]),
            ),
            ("waiting-room", procs::listening_pids(&instance_ports)),
            ("bare-200", vec![bare.pid()]),
            ("redis-server", procs::listening_pids(&[redis_port])),
        ],
    };
    for (name, pids) in &groups.by_name {
        println!("    {name}: pid {pids:?}");
        if pids.is_empty() {
            notes.push(format!("no {name} process found: its CPU is missing"));
        }
    }

    let mut phases = Vec::new();
    let event_path = format!("/api/queue/{}", event.id);
    let (join_phase, tokens) = measured_with(
        "join",
        "join (direct, one per fan)",
        &groups,
        &mut redis,
        join_all(&instances, &event_path, &fans, args.join_concurrency),
    )
    .await?;
    let joined_count = tokens.iter().filter(|t| t.is_some()).count();
    let join_errors = fans.len() - joined_count;
    phases.push(join_phase);
    ensure!(joined_count > 0, "no fan could join");
    let live: Vec<(usize, String)> = tokens
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.clone().map(|t| (i, t)))
        .collect();

    // The tokens: all of them for the lead, a spread-out sample for wrk.
    let all_tokens = args.report_dir.join("herd-tokens.txt");
    write_lines(&all_tokens, live.iter().map(|(_, t)| t.as_str()))?;
    let stride = live.len().div_ceil(args.wrk_tokens.max(1)).max(1);
    let wrk_tokens = args.report_dir.join("herd-wrk-tokens.txt");
    write_lines(
        &wrk_tokens,
        live.iter().step_by(stride).map(|(_, t)| t.as_str()),
    )?;

    // Positions right after the joins, while nobody has moved.
    println!("==> position accuracy ({} fans)", args.accuracy_sample);
    let waiting_key = keys.queue_waiting(event.id.parse::<Uuid>()?.into());
    let accuracy = accuracy(
        &mut redis,
        &waiting_key,
        &instances,
        &event_path,
        &fans,
        &tokens,
        args.accuracy_sample,
    )
    .await?;

    let status = format!("{event_path}/status");
    let script = wrk::write_script(&args.report_dir, "status", &wrk_tokens, &status)?;
    let (c, s) = (args.connections, args.seconds);
    let local = |port: u16| vec![format!("http://127.0.0.1:{port}")];
    phases.push(
        measured(
            "floor_a",
            "floor A: nginx return 200",
            &groups,
            &mut redis,
            async { Ok(wrk::run(&local(nginx.ok_port), &script, c, s).await?.into()) },
        )
        .await?,
    );
    phases.push(
        measured("bare", "bare 200, direct", &groups, &mut redis, async {
            Ok(wrk::run(&local(bare.addr.port()), &script, c, s)
                .await?
                .into())
        })
        .await?,
    );
    phases.push(
        measured(
            "floor_b",
            "floor B: nginx → bare 200",
            &groups,
            &mut redis,
            async {
                Ok(wrk::run(&local(nginx.proxy_port), &script, c, s)
                    .await?
                    .into())
            },
        )
        .await?,
    );
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return 1")
        .query_async(&mut redis)
        .await
        .context("SCRIPT LOAD")?;
    // redis-benchmark counts requests, not time: a short probe outside the window sets the
    // count for about `--seconds`.
    let bench_url = redis_url.clone();
    let probe = {
        let (url, sha) = (bench_url.clone(), sha.clone());
        tokio::task::spawn_blocking(move || floors::evalsha(&url, &sha, c, 20_000)).await??
    };
    let bench_requests = ((probe.rps * s as f64) as u64).max(20_000);
    phases.push(
        measured(
            "floor_c",
            "floor C: EVALSHA return 1 (redis-benchmark)",
            &groups,
            &mut redis,
            async move {
                let row = tokio::task::spawn_blocking(move || {
                    floors::evalsha(&bench_url, &sha, c, bench_requests)
                })
                .await??;
                Ok(Load {
                    requests: bench_requests,
                    errors: 0,
                    p50_ms: Some(row.p50_ms),
                    p99_ms: Some(row.p99_ms),
                    // redis-benchmark's own time, without its start-up.
                    seconds: Some(bench_requests as f64 / row.rps.max(1.0)),
                    ..Load::default()
                })
            },
        )
        .await?,
    );
    phases.push(
        measured(
            "status_direct",
            &format!("status, direct ({} instance(s))", instances.len()),
            &groups,
            &mut redis,
            async { Ok(wrk::run(&instances, &script, c, s).await?.into()) },
        )
        .await?,
    );
    phases.push(
        measured(
            "status_gateway",
            "status, through the gateway",
            &groups,
            &mut redis,
            async {
                Ok(wrk::run(&[gateway.to_string()], &script, c, s)
                    .await?
                    .into())
            },
        )
        .await?,
    );

    println!("==> opening {} push streams", args.streams);
    let push_tokens: Vec<String> = live
        .iter()
        .step_by(live.len().div_ceil(args.streams.max(1)).max(1))
        .map(|(_, t)| t.clone())
        .collect();
    let streams = push::open(
        gateway,
        &event.id,
        &push_tokens,
        args.streams,
        100,
        Duration::from_secs(60),
    )
    .await?;
    let opened = streams.open.load(Ordering::Relaxed);
    let open_failed = streams.failed.load(Ordering::Relaxed);
    println!(
        "    {opened} open, {open_failed} failed in {:.1} s",
        streams.opened_in.as_secs_f64()
    );
    let frames_before = streams.frames.load(Ordering::Relaxed);
    let push_phase = measured(
        "push",
        &format!("push: {opened} streams through the gateway"),
        &groups,
        &mut redis,
        async {
            tokio::time::sleep(Duration::from_secs(s)).await;
            let frames = streams.frames.load(Ordering::Relaxed) - frames_before;
            let still_open = streams.open.load(Ordering::Relaxed);
            Ok(Load {
                requests: frames,
                errors: open_failed + opened.saturating_sub(still_open),
                streams_open: still_open,
                note: Some(format!(
                    "{opened} streams open, {frames} status frames in the window; rate = frames/s, CPU per frame"
                )),
                ..Load::default()
            })
        },
    )
    .await?;
    phases.push(push_phase);
    streams.close().await;
    drop(nginx);
    drop(bare);

    println!("==> Redis memory of the event");
    let memory = redis_stats::event_memory(&mut redis, keys.prefix(), &event.id).await?;
    let per_fan = memory.total_bytes as f64 / joined_count as f64;

    let herd = Herd {
        command,
        run_id,
        event_id: event.id.clone(),
        fans: args.fans,
        joined: joined_count,
        join_errors,
        waiting_room_urls: instances,
        gateway_url: gateway.to_string(),
        redis_url: crate::limits::redis_host_port(&redis_url).0 + ":" + &redis_port.to_string(),
        connections: args.connections,
        seconds: args.seconds,
        streams: args.streams,
        phases,
        redis_bytes_total: memory.total_bytes,
        redis_bytes_per_fan: per_fan,
        redis_keys: memory.keys,
        accuracy,
        loadavg: crate::report::loadavg(),
        notes,
    };
    report::write(&args.report_dir, &herd)?;
    print!("{}", report::markdown(&herd));
    Ok(())
}

/// Every fan joins once, `concurrency` at a time, spread over the instances; the queue token
/// of each fan (by index) who could.
async fn join_all(
    instances: &[String],
    event_path: &str,
    fans: &[setup::Fan],
    concurrency: usize,
) -> anyhow::Result<(Load, Vec<Option<String>>)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let fans: Arc<Vec<String>> = Arc::new(fans.iter().map(|f| f.token.clone()).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (client, fans, next) = (client.clone(), fans.clone(), next.clone());
        let urls: Vec<String> = instances
            .iter()
            .map(|i| format!("{i}{event_path}/join"))
            .collect();
        workers.spawn(async move {
            let mut got = Vec::new();
            let mut last_error = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(token) = fans.get(i) else { break };
                let url = &urls[i % urls.len()];
                match join_one(&client, url, token).await {
                    Ok(queue_token) => got.push((i, queue_token)),
                    Err(err) => last_error = Some(format!("{err:#}")),
                }
            }
            (got, last_error)
        });
    }
    let mut tokens = vec![None; fans.len()];
    let mut last_error = None;
    while let Some(done) = workers.join_next().await {
        let (got, err) = done?;
        for (i, t) in got {
            tokens[i] = Some(t);
        }
        last_error = last_error.or(err);
    }
    let joined = tokens.iter().filter(|t| t.is_some()).count();
    let errors = (fans.len() - joined) as u64;
    let load = Load {
        requests: joined as u64,
        errors,
        note: last_error.map(|e| format!("last join error: {e}")),
        ..Load::default()
    };
    Ok((load, tokens))
}

async fn join_one(client: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<String> {
    let body = setup::expect(client.post(url).bearer_auth(token), 200, "join").await?;
    ensure!(
        body["state"] == "waiting",
        "a fan joined as {} (the line should stand still)",
        body["state"]
    );
    Ok(body["queue_token"]
        .as_str()
        .context("join gave no queue token")?
        .to_string())
}

/// Compares the answered position of `sample` fans (the first 1,000 in line, the rest
/// spread over the line) with Redis's exact one.
async fn accuracy(
    redis: &mut MultiplexedConnection,
    waiting_key: &str,
    instances: &[String],
    event_path: &str,
    fans: &[setup::Fan],
    tokens: &[Option<String>],
    sample: usize,
) -> anyhow::Result<redis_stats::Accuracy> {
    let by_member: HashMap<[u8; 16], usize> = fans
        .iter()
        .enumerate()
        .map(|(i, f)| (*f.id.as_uuid().as_bytes(), i))
        .collect();
    let mut chosen: Vec<usize> = redis_stats::front(redis, waiting_key, sample.min(1000))
        .await?
        .iter()
        .filter_map(|m| <[u8; 16]>::try_from(m.as_slice()).ok())
        .filter_map(|m| by_member.get(&m).copied())
        .collect();
    let rest = sample.saturating_sub(chosen.len());
    if let Some(step) = fans.len().checked_div(rest) {
        let step = step.max(1);
        let front: std::collections::HashSet<usize> = chosen.iter().copied().collect();
        chosen.extend(
            (0..fans.len())
                .step_by(step)
                .filter(|i| !front.contains(i))
                .take(rest),
        );
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut acc = redis_stats::Accuracy::default();
    for (n, i) in chosen.into_iter().enumerate() {
        let Some(token) = &tokens[i] else {
            acc.skipped += 1;
            continue;
        };
        let url = format!("{}{event_path}/status", instances[n % instances.len()]);
        let body = setup::expect(
            client.get(&url).header("X-Queue-Token", token),
            200,
            "status",
        )
        .await?;
        let exact =
            redis_stats::exact_position(redis, waiting_key, fans[i].id.as_uuid().as_bytes())
                .await?;
        match (body["state"].as_str(), body["position"].as_u64(), exact) {
            (Some("waiting"), Some(answered), Some(exact)) => acc.add(answered, exact),
            _ => acc.skipped += 1,
        }
    }
    Ok(acc)
}

fn write_lines<'a>(path: &Path, lines: impl Iterator<Item = &'a str>) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// The port of `http://host:port/...`.
fn url_port(url: &str) -> Option<u16> {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let hostport = rest.split('/').next()?;
    hostport.rsplit_once(':')?.1.parse().ok()
}

/// An argument as the shell would need it to read it back.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_their_port() {
        assert_eq!(url_port("http://127.0.0.1:28080"), Some(28080));
        assert_eq!(url_port("http://127.0.0.1:8081/"), Some(8081));
        assert_eq!(url_port("http://localhost/x"), None);
    }

    #[test]
    fn command_lines_are_quoted_only_where_needed() {
        assert_eq!(shell_word("--fans"), "--fans");
        assert_eq!(shell_word("http://127.0.0.1:8081"), "http://127.0.0.1:8081");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
