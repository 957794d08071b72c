//! The HTTP phases' load generator: `wrk` with a Lua script of ours that cycles through the
//! waiting fans' queue tokens (header `X-Queue-Token`, each thread starting at its own share of
//! the list) and, when done, prints one `HERD {json}` line with the counts and the latency
//! percentiles, which is what we parse (wrk's own text rounds and changes units).
//!
//! Several targets (several waiting-room instances) get one wrk each, the connections split
//! between them; their results are added up.

use std::{path::Path, time::Duration};

use anyhow::{Context, ensure};
use serde::{Deserialize, Serialize};

/// The script: `TOKENS` is the file of queue tokens (one a line), `PATH` the request path.
const SCRIPT: &str = r#"-- Written by `loadtest herd`: cycles through the queue tokens in X-Queue-Token.
local tokens_file = "__TOKENS__"
local path = "__PATH__"
local threads_started = 0
local tokens = {}
local i = 0

function setup(thread)
  thread:set("thread_no", threads_started)
  threads_started = threads_started + 1
end

function init(args)
  for line in io.lines(tokens_file) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  -- Each thread starts at its own place, so two threads do not ask for the same fan.
  i = ((thread_no or 0) * 7919) % math.max(#tokens, 1)
end

function request()
  if #tokens == 0 then return wrk.format("GET", path) end
  i = i % #tokens + 1
  return wrk.format("GET", path, { ["X-Queue-Token"] = tokens[i] })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'HERD {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"#;

/// What one wrk run (or several added up) measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    pub duration_us: u64,
    pub connect_errors: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    /// Answers outside 2xx/3xx.
    pub status_errors: u64,
    pub timeouts: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub mean_us: f64,
}

impl WrkResult {
    pub fn errors(&self) -> u64 {
        self.connect_errors
            + self.read_errors
            + self.write_errors
            + self.status_errors
            + self.timeouts
    }

    /// Runs side by side added up: counts summed, the longest duration, the p50 weighted by
    /// requests (an approximation) and the worst p99.
    pub fn combine(results: &[WrkResult]) -> WrkResult {
        let requests: u64 = results.iter().map(|r| r.requests).sum();
        let weight = |f: fn(&WrkResult) -> f64| {
            if requests == 0 {
                0.0
            } else {
                results
                    .iter()
                    .map(|r| f(r) * r.requests as f64)
                    .sum::<f64>()
                    / requests as f64
            }
        };
        WrkResult {
            requests,
            duration_us: results.iter().map(|r| r.duration_us).max().unwrap_or(0),
            connect_errors: results.iter().map(|r| r.connect_errors).sum(),
            read_errors: results.iter().map(|r| r.read_errors).sum(),
            write_errors: results.iter().map(|r| r.write_errors).sum(),
            status_errors: results.iter().map(|r| r.status_errors).sum(),
            timeouts: results.iter().map(|r| r.timeouts).sum(),
            p50_us: weight(|r| r.p50_us as f64) as u64,
            p99_us: results.iter().map(|r| r.p99_us).max().unwrap_or(0),
            mean_us: weight(|r| r.mean_us),
        }
    }
}

/// The `HERD {...}` line of a wrk run's output.
pub fn parse(output: &str) -> anyhow::Result<WrkResult> {
    let line = output
        .lines()
        .find_map(|l| l.strip_prefix("HERD "))
        .context("wrk printed no HERD line (did the script load?)")?;
    serde_json::from_str(line).with_context(|| format!("wrk's HERD line: {line}"))
}

/// Writes the Lua script for `path` reading `tokens` into `dir`; returns its path.
pub fn write_script(
    dir: &Path,
    name: &str,
    tokens: &Path,
    path: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let lua_string = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let script = SCRIPT
        .replace("__TOKENS__", &lua_string(&tokens.to_string_lossy()))
        .replace("__PATH__", &lua_string(path));
    let file = dir.join(format!("wrk-{name}.lua"));
    std::fs::write(&file, script).with_context(|| format!("writing {}", file.display()))?;
    Ok(file)
}

/// Runs one wrk per base URL at once (`connections` split between them) for `seconds`.
pub async fn run(
    bases: &[String],
    script: &Path,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<WrkResult> {
    ensure!(!bases.is_empty(), "no target for wrk");
    let per = (connections / bases.len()).max(1);
    let threads = if bases.len() == 1 { 2 } else { 1 };
    let mut children = Vec::new();
    for base in bases {
        // Its own session (`setsid` execs in place: the pid stays ours to wait for), so with
        // the kernel's autogroups it gets a share of the CPU like each service of the stack,
        // not a slice of this process's.
        let child = tokio::process::Command::new("setsid")
            .arg("wrk")
            .args([
                "-t",
                &threads.to_string(),
                "-c",
                &per.max(threads).to_string(),
                "-d",
                &format!("{seconds}s"),
                "--timeout",
                "5s",
                "-s",
            ])
            .arg(script)
            .arg(base)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting wrk (Debian package wrk)")?;
        children.push(child);
    }
    let mut results = Vec::new();
    for child in children {
        let out = tokio::time::timeout(Duration::from_secs(seconds + 30), child.wait_with_output())
            .await
            .context("wrk did not finish")??;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        results.push(parse(&text)?);
    }
    Ok(WrkResult::combine(&results))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Running 2s test @ http://127.0.0.1:28081/api/queue/x/status
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.61ms    3.02ms  41.29ms   84.05%
    Req/Sec     4.52k   512.33     5.41k    70.00%
  18010 requests in 2.00s, 4.76MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   9001.42
Transfer/sec:      2.38MB
HERD {\"requests\":18010,\"duration_us\":2000789,\"connect_errors\":0,\"read_errors\":0,\"write_errors\":0,\"status_errors\":3,\"timeouts\":1,\"p50_us\":4987,\"p99_us\":17122,\"mean_us\":5612.4}
";

    #[test]
    fn the_herd_line_of_wrk_output_gives_counts_rate_and_percentiles() {
        let r = parse(OUTPUT).expect("parses");
        assert_eq!(r.requests, 18010);
        assert_eq!((r.p50_us, r.p99_us), (4987, 17122));
        assert_eq!(r.errors(), 4);
        assert_eq!(r.duration_us, 2_000_789);
        assert!(parse("Requests/sec: 12.0\n").is_err());
    }

    #[test]
    fn side_by_side_runs_add_counts_and_keep_the_worst_p99() {
        let a = WrkResult {
            requests: 300,
            duration_us: 1_000_000,
            p50_us: 100,
            p99_us: 900,
            mean_us: 120.0,
            ..WrkResult::default()
        };
        let b = WrkResult {
            requests: 100,
            duration_us: 1_100_000,
            p50_us: 500,
            p99_us: 700,
            status_errors: 2,
            mean_us: 520.0,
            ..WrkResult::default()
        };
        let c = WrkResult::combine(&[a, b]);
        assert_eq!(
            (c.requests, c.duration_us, c.p50_us, c.p99_us),
            (400, 1_100_000, 200, 900)
        );
        assert_eq!(c.errors(), 2);
        assert!((c.mean_us - 220.0).abs() < 1e-9);
    }

    #[test]
    fn the_script_names_the_token_file_and_path_as_lua_strings() {
        let dir = std::env::temp_dir().join(format!("herd-wrk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let file = write_script(
            &dir,
            "t",
            Path::new("/tmp/a\"b/tokens"),
            "/api/queue/1/status",
        )
        .expect("written");
        let text = std::fs::read_to_string(&file).expect("readable");
        assert!(text.contains(r#"local tokens_file = "/tmp/a\"b/tokens""#));
        assert!(text.contains(r#"local path = "/api/queue/1/status""#));
        std::fs::remove_dir_all(&dir).expect("removed");
    }
}
