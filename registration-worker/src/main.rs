//! The registration-worker binary: load config, init telemetry, build, run until shutdown.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = registration_worker::Config::from_env()?;
    shared::telemetry::init_tracing(config.log_format);
    let worker = registration_worker::build(&config).await?;
    tracing::info!(addr = %worker.local_addr(), "registration worker listening");
    worker.run_until(shared::shutdown::signal()).await
}
