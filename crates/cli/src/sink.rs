//! `belfry sink`: a recording HTTP receiver for demos and tests.

use std::net::SocketAddr;

use clap::Args;

/// Flags of `belfry sink`.
#[derive(Debug, Clone, Args)]
pub struct SinkArgs {
    /// Address to listen on.
    #[arg(long, env = "BELFRY_SINK_ADDR", default_value = "127.0.0.1:7300")]
    pub addr: SocketAddr,
    /// Delay every answer by this many milliseconds (keeps deliveries in flight).
    #[arg(long, env = "BELFRY_SINK_DELAY_MS", default_value_t = 0)]
    pub delay_ms: u64,
    /// A scripted answer, repeatable: `PATH=STATUS[xTIMES][@RETRY_AFTER_SECS]`, e.g.
    /// `--answer /flaky=503x2` (two 503s, then 200s) or `--answer /gone=404` (always 404).
    #[arg(long = "answer", value_name = "PATH=STATUS[xN][@SECS]")]
    pub answers: Vec<belfry_node::sink::Answer>,
}

/// Runs the sink until SIGINT or SIGTERM.
pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    crate::serve::init_logging("text");
    let options = belfry_node::sink::SinkOptions { delay: std::time::Duration::from_millis(args.delay_ms) };
    let (addr, task) = belfry_node::sink::bind_scripted(args.addr, options, args.answers).await?;
    tracing::info!(%addr, "sink listening; deliveries at /_sink/deliveries");
    crate::serve::wait_for_signal().await;
    task.abort();
    Ok(())
}
