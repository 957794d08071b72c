//! The ticketing API binary: load config, init telemetry, build the app, run until shutdown.

use ticketing_api::{Application, Config};

/// mimalloc instead of glibc's malloc, whose bookkeeping took a fifth of a service's CPU
/// under a flash sale (`perf record` during `infra/dev loadtest`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    shared::telemetry::init_tracing(config.log_format);
    let app = Application::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "ticketing API listening");
    app.run_until(shared::shutdown::signal()).await
}
