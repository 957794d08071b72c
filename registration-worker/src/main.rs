//! The registration-worker binary: load config, init telemetry, build, run until shutdown.

/// mimalloc instead of glibc's malloc, whose bookkeeping took a fifth of a service's CPU
/// under a flash sale (`perf record` during `infra/dev loadtest`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = registration_worker::Config::from_env()?;
    shared::telemetry::init_tracing(config.log_format);
    let worker = registration_worker::build(&config).await?;
    tracing::info!(addr = %worker.local_addr(), "registration worker listening");
    worker.run_until(shared::shutdown::signal()).await
}
