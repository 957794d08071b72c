//! The floors a herd run measures itself against, each started and stopped by the run:
//!
//! - a throw-away nginx, rendered into the report directory, on two free loopback ports: one
//!   answering `return 200` (floor A), one proxying to the bare 200 server (floor B) with the
//!   gateway's upstream settings (keep-alive pool, HTTP/1.1, the same proxy headers, no
//!   buffering as on `/api/queue/`), so the difference to the gateway is the waiting room;
//! - the bare 200 server: `loadtest bare-200 --addr`, this binary in its own process (so its
//!   CPU is its own), axum answering every request `200 ok`;
//! - `redis-benchmark` running `EVALSHA` of `return 1` (floor C): the least a Lua call costs.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};

use crate::limits::{BenchRow, csv_row, redis_host_port};

/// A free loopback port (bound and released: another process could take it in between, which
/// start-up would then report).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until `addr` accepts connections.
pub async fn wait_listening(addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not listen on {addr} within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The bare 200 server: every request answers `200 ok`. Runs until killed.
pub async fn bare_200(addr: SocketAddr) -> anyhow::Result<()> {
    let app = axum::Router::new().fallback(|| async { "ok\n" });
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// The bare 200 server's process.
pub struct Bare {
    child: Child,
    pub addr: SocketAddr,
}

impl Bare {
    pub async fn start() -> anyhow::Result<Self> {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let exe = std::env::current_exe().context("this binary's path")?;
        // Its own session, like the services (see `wrk::run`); setsid execs in place.
        let child = Command::new("setsid")
            .arg(exe)
            .args(["bare-200", "--addr", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting loadtest bare-200")?;
        let bare = Self { child, addr };
        wait_listening(addr, "the bare 200 server").await?;
        Ok(bare)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The throw-away nginx: `return 200` on `ok_port`, proxying to the bare server on
/// `proxy_port`.
pub struct Nginx {
    dir: PathBuf,
    pub ok_port: u16,
    pub proxy_port: u16,
}

/// The floor nginx's config: the gateway's main settings (`infra/nginx/dev-main.conf.template`)
/// and upstream settings, no access log (a floor).
pub fn nginx_config(dir: &Path, ok_port: u16, proxy_port: u16, bare: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"# Rendered by `loadtest herd`: the floors A (return 200) and B (proxy to a bare 200).
worker_processes auto;
worker_rlimit_nofile 65536;
pid "{d}/nginx.pid";
error_log "{d}/error.log" warn;
events {{
    worker_connections 16384;
}}
http {{
    access_log off;
    client_body_temp_path "{d}/tmp/client_body";
    proxy_temp_path "{d}/tmp/proxy";
    fastcgi_temp_path "{d}/tmp/fastcgi";
    uwsgi_temp_path "{d}/tmp/uwsgi";
    scgi_temp_path "{d}/tmp/scgi";
    keepalive_timeout 65s;
    keepalive_requests 100000;
    server_tokens off;

    upstream bare {{
        server {bare};
        keepalive 512;
        keepalive_requests 100000;
    }}

    server {{
        listen 127.0.0.1:{ok_port};
        location / {{
            default_type text/plain;
            return 200 "ok\n";
        }}
    }}

    server {{
        listen 127.0.0.1:{proxy_port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Request-Id $request_id;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $http_host;
        location / {{
            proxy_pass http://bare;
            proxy_buffering off;
        }}
    }}
}}
"#
    )
}

impl Nginx {
    pub async fn start(dir: &Path, bare: SocketAddr) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("tmp"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let dir = std::fs::canonicalize(dir)?;
        let (ok_port, proxy_port) = (free_port()?, free_port()?);
        ensure!(ok_port != proxy_port, "got the same free port twice");
        std::fs::write(
            dir.join("nginx.conf"),
            nginx_config(&dir, ok_port, proxy_port, bare),
        )?;
        let nginx = Self {
            dir,
            ok_port,
            proxy_port,
        };
        let out = nginx
            .command()
            .output()
            .context("starting nginx (Debian package nginx)")?;
        ensure!(
            out.status.success(),
            "nginx did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for port in [ok_port, proxy_port] {
            wait_listening(([127, 0, 0, 1], port).into(), "the floor nginx").await?;
        }
        Ok(nginx)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(format!("{}/", self.dir.display()))
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .arg("-c")
            .arg(self.dir.join("nginx.conf"));
        cmd
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // `-s stop`: this nginx's own master (its pid file), nobody else's.
        let _ = self.command().args(["-s", "stop"]).output();
    }
}

/// `EVALSHA sha 0` (`return 1`), `requests` of them from `connections` clients.
pub fn evalsha(
    redis_url: &str,
    sha: &str,
    connections: usize,
    requests: u64,
) -> anyhow::Result<BenchRow> {
    let (host, port) = redis_host_port(redis_url);
    // Its own session, like the services (see `wrk::run`).
    let output = Command::new("setsid")
        .arg("redis-benchmark")
        .args(["-h", &host, "-p", &port.to_string()])
        .args(["-c", &connections.to_string(), "-n", &requests.to_string()])
        .args(["-q", "--csv", "EVALSHA", sha, "0"])
        .output()
        .context("running redis-benchmark (package redis-tools)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "redis-benchmark: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    csv_row(&text).with_context(|| format!("redis-benchmark printed {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_config_serves_return_200_and_proxies_to_the_bare_server() {
        let conf = nginx_config(
            Path::new("/r/nginx"),
            30001,
            30002,
            "127.0.0.1:30003".parse().expect("an address"),
        );
        assert!(conf.contains("listen 127.0.0.1:30001;"));
        assert!(conf.contains("listen 127.0.0.1:30002;"));
        assert!(conf.contains("server 127.0.0.1:30003;"));
        assert!(conf.contains("pid \"/r/nginx/nginx.pid\";"));
        assert!(conf.contains("return 200"));
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
    }
}
