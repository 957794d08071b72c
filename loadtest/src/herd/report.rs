//! herd.json (everything measured) and herd.md (the table, each figure beside its floor, and
//! the issue's aims with what this run measured against them).

use std::{fmt::Write as _, path::Path};

use anyhow::Context;

use super::{Herd, Phase};

pub fn write(dir: &Path, herd: &Herd) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(herd)?;
    std::fs::write(dir.join("herd.json"), json)
        .with_context(|| format!("writing {}/herd.json", dir.display()))?;
    std::fs::write(dir.join("herd.md"), markdown(herd))
        .with_context(|| format!("writing {}/herd.md", dir.display()))?;
    Ok(())
}

fn phase<'a>(herd: &'a Herd, key: &str) -> Option<&'a Phase> {
    herd.phases.iter().find(|p| p.key == key)
}

/// The floor each phase's rate is compared with.
fn floor_of(key: &str) -> Option<&'static str> {
    match key {
        "floor_b" => Some("floor_a"),
        "status_direct" => Some("bare"),
        "status_gateway" => Some("floor_b"),
        _ => None,
    }
}

const GROUPS: [(&str, &str); 5] = [
    ("nginx", "nginx"),
    ("waiting-room", "waiting room"),
    ("bare-200", "bare 200"),
    ("redis-server", "Redis"),
    ("generator", "generator"),
];

fn cpu(p: &Phase, group: &str) -> Option<f64> {
    let us = *p.cpu_us_per_request.get(group)?;
    // A process that sat idle through the phase (under 1 % of a core) is not part of it.
    let busy = p.cores.get(group).copied().unwrap_or(0.0) >= 0.01;
    (us.is_finite() && busy).then_some(us)
}

fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "—".into(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "—",
    }
}

pub fn markdown(herd: &Herd) -> String {
    let mut md = String::new();
    let instances = herd.waiting_room_urls.len();
    let _ = writeln!(md, "# loadtest herd {}\n", herd.run_id);
    let _ = writeln!(md, "```\n{}\n```\n", herd.command);
    let _ = writeln!(
        md,
        "{} fans joined ({} failed) to event `{}`; phases of {} s at {} connections; \
         {} waiting-room instance(s) ({}); gateway {}; Redis {}; load average at the end {}.\n",
        thousands(herd.joined as f64),
        herd.join_errors,
        herd.event_id,
        herd.seconds,
        herd.connections,
        instances,
        herd.waiting_room_urls.join(", "),
        herd.gateway_url,
        herd.redis_url,
        herd.loadavg,
    );
    md.push_str(
        "CPU is µs per request (push: per status frame) from `/proc`, processes found by their \
         listening port; `generator` is wrk, redis-benchmark or this process (push). Redis calls \
         are the whole server's (`INFO commandstats`), and Redis counts every command a script \
         runs as a call of its own: `evalsha` in the top commands is the round trips. The machine may be shared: the ratios to \
         the floors of the same run are what count.\n\n",
    );

    md.push_str("| phase | rate /s | × its floor | p50 ms | p99 ms | errors |");
    for (_, label) in GROUPS {
        let _ = write!(md, " {label} µs |");
    }
    md.push_str(" Redis calls/s | Redis calls per request | top Redis commands /s |\n");
    md.push_str("|---|---:|---:|---:|---:|---:|");
    for _ in GROUPS {
        md.push_str("---:|");
    }
    md.push_str("---:|---:|---|\n");
    for p in &herd.phases {
        let floor = floor_of(p.key).and_then(|f| phase(herd, f)).map(|f| f.rate);
        let _ = write!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            p.name,
            thousands(p.rate),
            num(ratio(Some(p.rate), floor), 2),
            num(p.p50_ms, 2),
            num(p.p99_ms, 2),
            p.errors
        );
        for (group, _) in GROUPS {
            let _ = write!(md, " {} |", num(cpu(p, group), 1));
        }
        let per_request = ratio(Some(p.redis_calls.total_per_s), Some(p.rate));
        let top = p
            .redis_calls
            .top
            .iter()
            .map(|(name, rate)| format!("{name} {}", thousands(*rate)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            md,
            " {} | {} | {} |",
            thousands(p.redis_calls.total_per_s),
            num(per_request, 2),
            top
        );
    }
    let notes: Vec<String> = herd
        .phases
        .iter()
        .filter_map(|p| p.note.as_ref().map(|n| format!("- {}: {n}", p.name)))
        .chain(herd.notes.iter().map(|n| format!("- {n}")))
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(md, "\n{}", notes.join("\n"));
    }

    let gw = phase(herd, "status_gateway");
    let direct = phase(herd, "status_direct");
    let push = phase(herd, "push");
    let floor_b = phase(herd, "floor_b");
    let bare = phase(herd, "bare");
    let floor_c = phase(herd, "floor_c");
    md.push_str(
        "\n## Against the floors\n\n| figure | this run | floor | ratio |\n|---|---:|---:|---:|\n",
    );
    let mut row = |name: &str, value: Option<f64>, floor: Option<f64>, digits: usize| {
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} |",
            num(value, digits),
            num(floor, digits),
            num(ratio(value, floor), 2)
        );
    };
    row(
        "status via gateway, req/s (floor B: nginx → bare 200)",
        gw.map(|p| p.rate),
        floor_b.map(|p| p.rate),
        0,
    );
    row(
        "status direct, req/s (bare 200 direct)",
        direct.map(|p| p.rate),
        bare.map(|p| p.rate),
        0,
    );
    row(
        "waiting-room µs per status read, direct (bare 200's µs per request)",
        direct.and_then(|p| cpu(p, "waiting-room")),
        bare.and_then(|p| cpu(p, "bare-200")),
        1,
    );
    row(
        "nginx µs per status read via gateway (floor B's nginx µs)",
        gw.and_then(|p| cpu(p, "nginx")),
        floor_b.and_then(|p| cpu(p, "nginx")),
        1,
    );
    row(
        "Redis µs per status read, direct (Redis µs per EVALSHA return 1)",
        direct.and_then(|p| cpu(p, "redis-server")),
        floor_c.and_then(|p| cpu(p, "redis-server")),
        1,
    );
    row(
        "Redis calls/s during status reads, direct (EVALSHA floor, calls/s)",
        direct.map(|p| p.redis_calls.total_per_s),
        floor_c.map(|p| p.rate),
        0,
    );
    row(
        "Redis calls/s during push (EVALSHA floor, calls/s)",
        push.map(|p| p.redis_calls.total_per_s),
        floor_c.map(|p| p.rate),
        0,
    );

    md.push_str(
        "\n## The issue's aims\n\n| aim | this run | target | met |\n|---|---:|---:|---|\n",
    );
    let mut aim =
        |name: &str, value: Option<f64>, digits: usize, target: &str, ok: Option<bool>| {
            let _ = writeln!(
                md,
                "| {name} | {} | {target} | {} |",
                num(value, digits),
                verdict(ok)
            );
        };
    let gw_ratio = ratio(gw.map(|p| p.rate), floor_b.map(|p| p.rate));
    aim(
        "status via gateway ÷ floor B",
        gw_ratio,
        2,
        "≥ 0.5",
        gw_ratio.map(|r| r >= 0.5),
    );
    for (name, p) in [
        ("waiting-room µs per status read (gateway)", gw),
        ("waiting-room µs per status read (direct)", direct),
        ("waiting-room µs per push update", push),
    ] {
        let v = p.and_then(|p| cpu(p, "waiting-room"));
        aim(name, v, 1, "≤ 15", v.map(|v| v <= 15.0));
    }
    for (name, p) in [
        ("Redis calls/s per instance, status reads (direct)", direct),
        ("Redis calls/s per instance, status reads (gateway)", gw),
        ("Redis calls/s per instance, push", push),
    ] {
        let v = p.map(|p| p.redis_calls.total_per_s / instances.max(1) as f64);
        aim(name, v, 0, "≤ 20 + heartbeats", v.map(|v| v <= 20.0));
    }
    aim(
        "Redis bytes per waiting fan",
        Some(herd.redis_bytes_per_fan),
        1,
        "< 150",
        Some(herd.redis_bytes_per_fan < 150.0),
    );
    let acc = &herd.accuracy;
    let front = (acc.front_checked > 0).then(|| acc.front_exact_share() * 100.0);
    aim(
        &format!(
            "positions exact in the first 1,000, % of {} checked",
            acc.front_checked
        ),
        front,
        1,
        "100",
        front.map(|f| f >= 100.0),
    );
    let behind = (acc.behind_checked > 0).then_some(acc.behind_max_rel_error * 100.0);
    aim(
        &format!(
            "largest position error behind them, % ({} checked)",
            acc.behind_checked
        ),
        behind,
        2,
        "≤ 1",
        behind.map(|b| b <= 1.0),
    );
    if let Some(p) = push {
        // Streams cost even when nothing changes (today each one reads its status every
        // second): per open stream and second is the figure that shows it.
        let streams = p.streams_open.max(1) as f64;
        let _ = writeln!(
            md,
            "\nPush: {} streams open; the waiting room used {} cores ({} µs per stream per second), \
             nginx {} cores, Redis {} calls/s ({} per stream per second).",
            p.streams_open,
            num(p.cores.get("waiting-room").copied(), 2),
            num(p.cores.get("waiting-room").map(|c| c * 1e6 / streams), 1),
            num(p.cores.get("nginx").copied(), 2),
            thousands(p.redis_calls.total_per_s),
            num(Some(p.redis_calls.total_per_s / streams), 2),
        );
    }
    if acc.skipped > 0 {
        let _ = writeln!(
            md,
            "\n{} sampled fans were no longer waiting (admitted or dropped) and were not compared.",
            acc.skipped
        );
    }

    let _ = writeln!(
        md,
        "\n## Redis memory of the event\n\n{} bytes in {} keys, {} per waiting fan.\n\n| key | bytes |\n|---|---:|",
        thousands(herd.redis_bytes_total as f64),
        herd.redis_keys.len(),
        num(Some(herd.redis_bytes_per_fan), 1)
    );
    for (key, bytes) in herd.redis_keys.iter().take(12) {
        let _ = writeln!(md, "| `{key}` | {} |", thousands(*bytes as f64));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_figures_get_thousands_separators() {
        assert_eq!(thousands(63_912.4), "63,912");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(thousands(-1234.0), "-1,234");
    }

    #[test]
    fn ratios_need_a_positive_floor() {
        assert_eq!(ratio(Some(3.0), Some(6.0)), Some(0.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(ratio(Some(f64::NAN), Some(1.0)), None);
    }
}
