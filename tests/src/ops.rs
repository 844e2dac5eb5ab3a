//! Operator actions on a test cluster: growing it, stopping a node gracefully.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::{free_ports, Cluster, NodeProc};

impl Cluster {
    /// Starts one more node that joins the running cluster through node `via`; returns its id.
    pub fn add_node(&mut self, via: u64) -> anyhow::Result<u64> {
        let ports = free_ports(2);
        let id = self.nodes.len() as u64 + 1;
        let dir = self.nodes[0].data_dir.parent().context("cluster dir")?.join(format!("n{id}"));
        self.nodes.push(NodeProc {
            id,
            http: SocketAddr::from(([127, 0, 0, 1], ports[0])),
            grpc: SocketAddr::from(([127, 0, 0, 1], ports[1])),
            data_dir: dir,
            join: Some(self.url(via)),
            child: None,
        });
        self.spawn(id as usize - 1)?;
        Ok(id)
    }

    /// Starts node `id` again after [`Cluster::kill`] or [`Cluster::terminate`].
    pub fn start_node(&mut self, id: u64) -> anyhow::Result<()> {
        if self.nodes[id as usize - 1].child.is_some() {
            bail!("node {id} is running");
        }
        self.spawn(id as usize - 1)
    }

    /// Sends SIGTERM to node `id` and waits (up to `timeout`) for it to exit.
    pub async fn terminate(&mut self, id: u64, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let node = &mut self.nodes[id as usize - 1];
        let mut child = node.child.take().context("node is not running")?;
        let status = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {id} did not exit within {timeout:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to node `id`'s process.
    pub fn signal(&self, id: u64, signal: &str) -> anyhow::Result<()> {
        let child = self.nodes[id as usize - 1].child.as_ref().context("node is not running")?;
        let status =
            std::process::Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -{signal} failed");
        Ok(())
    }

    /// The gRPC address of node `id`.
    pub fn grpc_addr(&self, id: u64) -> SocketAddr {
        self.nodes[id as usize - 1].grpc
    }
}

impl Cluster {
    /// Node `id`'s data dir.
    pub fn data_dir(&self, id: u64) -> &std::path::Path {
        &self.nodes[id as usize - 1].data_dir
    }
}

impl Cluster {
    /// The process id of node `id`, while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.nodes[id as usize - 1].child.as_ref().map(|c| c.id())
    }

    /// Node `id`'s peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self, id: u64) -> anyhow::Result<u64> {
        let pid = self.pid(id).context("node is not running")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM in /proc status")?;
        let kib = line.split_whitespace().nth(1).context("VmHWM value")?;
        Ok(kib.parse()?)
    }

    /// SIGKILLs every node, then starts them all again with their data.
    pub fn restart_all(&mut self) -> anyhow::Result<()> {
        let ids: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        for id in &ids {
            self.kill(*id);
        }
        for id in ids {
            self.start_node(id)?;
        }
        Ok(())
    }

    /// Waits until every node is ready, then checks a write through each node commits: the
    /// cluster neither crashed nor wedged.
    pub async fn assert_healthy(&self, what: &str) -> anyhow::Result<()> {
        let ids: Vec<u64> = self.nodes.iter().filter(|n| n.child.is_some()).map(|n| n.id).collect();
        for id in &ids {
            self.wait_ready(*id, Duration::from_secs(30)).await.with_context(|| format!("after {what}"))?;
        }
        for id in ids {
            let name = format!("healthy-{}", probe_seq());
            let body = serde_json::json!({
                "name": name,
                "schedule": {"cron": "0 0 1 1 *"},
                "target": {"url": "http://127.0.0.1:9/never"}
            });
            let r = self.http.post(format!("{}/v1/jobs", self.url(id))).json(&body).send().await?;
            let status = r.status();
            anyhow::ensure!(
                status == 201,
                "after {what}: a write through node {id} answered {status}: {}",
                r.text().await?
            );
        }
        Ok(())
    }
}

/// A number not used before in this process, for the names of probe jobs.
fn probe_seq() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}
