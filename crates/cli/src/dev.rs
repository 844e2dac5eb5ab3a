//! `belfry dev`: a 3-node cluster on loopback, a demo sink and a demo job, in one process.
//! Peer TLS is on, with a CA and node certificates made in `<dir>/certs` on the first run.
//! Authentication is on: the nodes share one bootstrap admin token, `BELFRY_BOOTSTRAP_TOKEN`
//! or a random one, printed with the `export BELFRY_TOKEN=…` line the CLI needs.

use std::path::PathBuf;

use clap::Args;

/// Flags of `belfry dev`.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Folder for the three nodes' data (`<dir>/1`, `<dir>/2`, `<dir>/3`).
    #[arg(long, env = "BELFRY_DEV_DIR", default_value = "./belfry-dev")]
    pub data_dir: PathBuf,
    /// First HTTP port: nodes listen on PORT, PORT+1, PORT+2; gRPC on PORT+100...
    #[arg(long, default_value_t = 7101)]
    pub base_port: u16,
    /// Port of the demo sink.
    #[arg(long, default_value_t = 7300)]
    pub sink_port: u16,
    /// Serve the console's files from this folder, read at each request (for working on the
    /// console without a rebuild).
    #[arg(long, env = "BELFRY_CONSOLE_DIR")]
    pub console_dir: Option<PathBuf>,
}

/// Starts three nodes, the sink and a demo job; runs until Ctrl-C.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    use std::net::{Ipv4Addr, SocketAddr};
    crate::serve::init_logging("text");
    let ip = Ipv4Addr::LOCALHOST;
    let http = |i: u16| SocketAddr::from((ip, args.base_port + i));
    let grpc = |i: u16| SocketAddr::from((ip, args.base_port + 100 + i));
    let members: Vec<(u64, String)> = (0..3).map(|i| (u64::from(i) + 1, grpc(i).to_string())).collect();

    let sink_addr = SocketAddr::from((ip, args.sink_port));
    let (sink_addr, sink) = belfry_node::sink::bind(sink_addr, Default::default())
        .await
        .map_err(|e| anyhow::anyhow!("binding the demo sink {sink_addr} (--sink-port): {e}"))?;

    let bootstrap = match std::env::var("BELFRY_BOOTSTRAP_TOKEN") {
        Ok(token) => belfry_node::http::BootstrapToken::new(&token)
            .map_err(|e| anyhow::anyhow!("BELFRY_BOOTSTRAP_TOKEN: {e}"))?,
        Err(_) => {
            belfry_node::http::BootstrapToken::new(&belfry_node::http::random_token()).map_err(anyhow::Error::msg)?
        }
    };
    // Peer TLS as in production: a CA and node certificates kept with the data.
    let certs = args.data_dir.join("certs");
    crate::certs::ensure(&certs, &[1, 2, 3], &[], false)?;
    let console = crate::serve::console_files(args.console_dir.as_deref())?;
    let mut nodes = Vec::new();
    for i in 0..3u16 {
        let id = u64::from(i) + 1;
        let mut c = belfry_node::Config::new(id, http(i), grpc(i), args.data_dir.join(id.to_string()));
        c.initial_cluster = members.clone();
        let file = |name: String| certs.join(name);
        c.peer_tls = Some(belfry_node::peer_tls::PeerTls::load(
            id,
            &file("ca.pem".into()),
            &file(format!("node-{id}.pem")),
            &file(format!("node-{id}-key.pem")),
        )?);
        // The demo sink is on loopback.
        c.egress = belfry_node::egress::EgressPolicy::allowing_private();
        c.auth = belfry_node::http::ApiAuth::Tokens { bootstrap: bootstrap.clone() };
        c.rate_limit = Some(belfry_node::http::RateLimit::default());
        c.console = console.clone();
        nodes.push(belfry_node::Node::start(c).await?);
    }

    let endpoint = format!("http://{}", http(0));
    let sink_url = format!("http://{sink_addr}/demo");
    create_demo_job(&endpoint, bootstrap.expose(), &sink_url).await;

    println!();
    println!("belfry dev: a 3-node cluster on loopback, data in {}", args.data_dir.display());
    for i in 0..3u16 {
        println!("  node {}  http://{}  (gRPC {})", i + 1, http(i), grpc(i));
    }
    println!("  sink    http://{sink_addr}  (received deliveries: http://{sink_addr}/_sink/deliveries)");
    println!("  console {endpoint}/  (sign in with the admin token below)");
    println!("  certs   {}  (peer TLS: `belfry certs --dir {0} --nodes 4` for a node to add)", certs.display());
    println!();
    println!("The admin token of this run (the CLI reads BELFRY_TOKEN):");
    println!("  export BELFRY_TOKEN={}", bootstrap.expose());
    println!();
    let belfry = cli_command();
    println!("Try:");
    println!("  {belfry} job list");
    println!("  {belfry} exec list --job demo");
    println!("  {belfry} job create -f examples/hourly.yaml");
    println!("  curl -s -H \"Authorization: Bearer $BELFRY_TOKEN\" {endpoint}/v1/cluster");
    println!();
    println!("Ctrl-C stops the cluster; run `belfry dev` again to restart it with its data.");

    crate::serve::wait_for_signal().await;
    for node in nodes {
        node.shutdown().await;
    }
    sink.abort();
    Ok(())
}

/// How to run this binary from a shell: `belfry` when that name on PATH is this binary, its
/// full path otherwise (e.g. under `cargo run`, before `cargo install`).
fn cli_command() -> String {
    let Ok(exe) = std::env::current_exe().and_then(|p| p.canonicalize()) else { return "belfry".into() };
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("belfry").canonicalize().is_ok_and(|p| p == exe))
    });
    if on_path {
        "belfry".into()
    } else {
        exe.display().to_string()
    }
}

/// Creates the demo job (a POST to the sink every 10 s) once a leader is up; keeps it if it
/// exists from an earlier run.
async fn create_demo_job(endpoint: &str, token: &str, sink_url: &str) {
    let spec = serde_json::json!({
        "name": "demo",
        "schedule": {"every": "10s"},
        "target": {"url": sink_url, "method": "POST", "body": "{\"hello\":\"belfry\"}"}
    });
    let http = reqwest::Client::new();
    for _ in 0..50 {
        let sent = http.post(format!("{endpoint}/v1/jobs")).bearer_auth(token).json(&spec).send().await;
        match sent.map(|r| r.status().as_u16()) {
            Ok(201) | Ok(409) => return,
            _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
    tracing::warn!("demo job not created: no leader after 10 s");
}
