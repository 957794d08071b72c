//! The waiting-room binary: load config, init telemetry, build, run until shutdown.

/// mimalloc instead of glibc's malloc, whose bookkeeping took a fifth of a service's CPU
/// under a flash sale (`perf record` during `infra/dev loadtest`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = waiting_room::Config::from_env()?;
    shared::telemetry::init_tracing(config.log_format);
    let server = waiting_room::build(&config).await?;
    tracing::info!(addr = %server.local_addr(), "waiting room listening");
    server.run_until(shared::shutdown::signal()).await
}
