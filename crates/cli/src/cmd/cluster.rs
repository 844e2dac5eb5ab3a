//! `belfry cluster …`: status, members, add, remove, transfer-leader, and `dump`, the support
//! bundle: every member's view, liveness, readiness and metrics in one JSON file, with what
//! failed recorded per node rather than failing the whole dump (a dump is most needed when
//! part of the cluster is down).

use std::path::PathBuf;

use belfry_client::{Client, NewMember, Readiness};
use belfry_core::api::{rfc3339, ClusterView, MemberView};
use belfry_core::NodeId;
use clap::Subcommand;
use serde::Serialize;

use super::table::{opt, Table};
use super::{json, CliError, Ctx, Output};

/// `belfry cluster` subcommands.
#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Leader, term, indexes and every member as the endpoint sees them (each probed now).
    Status,
    /// Only the members table.
    Members,
    /// Add a node: it joins as a learner and becomes a voter once caught up.
    Add {
        /// The new node's raft id.
        id: NodeId,
        /// Its gRPC address (host:port), as the other nodes reach it.
        #[arg(long)]
        grpc_addr: String,
        /// Its HTTP address (host:port).
        #[arg(long)]
        http_addr: Option<String>,
    },
    /// Remove a node from the membership (sent to the leader).
    Remove {
        /// The node's raft id.
        id: NodeId,
        /// Remove it even if the server would refuse (e.g. it is unreachable).
        #[arg(long)]
        force: bool,
    },
    /// Hand leadership to another voter.
    TransferLeader {
        /// The voter to become leader.
        #[arg(long)]
        to: NodeId,
    },
    /// Write a support dump: every member's cluster view, /healthz, /readyz and /metrics.
    Dump {
        /// The JSON file to write (`-` for stdout).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Runs a `cluster` subcommand.
pub async fn run(ctx: &Ctx, command: ClusterCommand) -> Result<String, CliError> {
    let c = &ctx.client;
    match command {
        ClusterCommand::Status => status(ctx, &c.cluster().await?),
        ClusterCommand::Members => {
            let view = c.cluster().await?;
            match ctx.output {
                Output::Json => json(&view.members),
                Output::Table => Ok(members_table(&view)),
            }
        }
        ClusterCommand::Add { id, grpc_addr, http_addr } => {
            let added = c.add_member(&NewMember { id, grpc_addr, http_addr }).await?;
            match ctx.output {
                Output::Json => json(&added),
                Output::Table => Ok(format!(
                    "added node {} ({}) as a learner; it becomes a voter once caught up\n",
                    added.id, added.grpc_addr
                )),
            }
        }
        ClusterCommand::Remove { id, force } => {
            remove(ctx, id, force).await?;
            Ok(match ctx.output {
                Output::Table => format!("removed node {id}\n"),
                Output::Json => String::new(),
            })
        }
        ClusterCommand::TransferLeader { to } => status(ctx, &c.transfer_leadership(to).await?),
        ClusterCommand::Dump { out } => dump(ctx, out).await,
    }
}

/// Removes through the endpoint, or through the leader when the endpoint says it is not one.
async fn remove(ctx: &Ctx, id: NodeId, force: bool) -> Result<(), CliError> {
    match ctx.client.remove_member(id, force).await {
        Err(e) if e.code() == Some("not_leader") => {
            let view = ctx.client.cluster().await?;
            let leader = view.leader.and_then(|l| view.members.iter().find(|m| m.id == l));
            match leader.and_then(|m| m.http_addr.as_deref()) {
                Some(addr) => Ok(ctx.client_for(addr)?.remove_member(id, force).await?),
                None => Err(e.into()),
            }
        }
        other => Ok(other?),
    }
}

fn status(ctx: &Ctx, view: &ClusterView) -> Result<String, CliError> {
    if ctx.output == Output::Json {
        return json(view);
    }
    let leader = view.leader.map(|l| l.to_string()).unwrap_or_else(|| "none".into());
    Ok(format!(
        "node {} answering: leader {leader}, term {}, commit index {}, applied index {}\n\n{}",
        view.node,
        view.term,
        view.commit_index,
        view.applied_index,
        members_table(view)
    ))
}

fn members_table(view: &ClusterView) -> String {
    let mut t = Table::new(&["ID", "ROLE", "HTTP", "GRPC", "REACHABLE", "MATCH", "LAG", "VERSION", "ERROR"]);
    for m in &view.members {
        let mut role = if m.voter { "voter".to_string() } else { "learner".to_string() };
        if view.leader == Some(m.id) {
            role.push_str(" (leader)");
        }
        t.row(vec![
            m.id.to_string(),
            role,
            opt(m.http_addr.as_ref()),
            m.grpc_addr.clone(),
            if m.reachable { "yes".into() } else { "no".into() },
            opt(m.match_index),
            opt(m.lag),
            opt(m.version.as_ref()),
            opt(m.error.as_ref()),
        ]);
    }
    t.render()
}

/// The support dump file.
#[derive(Serialize)]
struct Dump {
    /// When the dump was taken (this machine's clock).
    generated_at: String,
    /// The endpoint the member list came from.
    endpoint: String,
    /// The CLI's version.
    cli_version: &'static str,
    /// The endpoint's view, whose members were then visited.
    cluster: ClusterView,
    /// One entry per member, in id order.
    nodes: Vec<NodeDump>,
}

/// What one member answered.
#[derive(Serialize)]
struct NodeDump {
    id: NodeId,
    http_addr: Option<String>,
    cluster: Probe<ClusterView>,
    healthz: Probe<String>,
    readyz: Probe<Readiness>,
    metrics: Probe<String>,
}

/// One request's outcome: `{"ok": …}` or `{"error": "…"}`.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Probe<T> {
    Ok(T),
    Error(String),
}

impl<T> Probe<T> {
    fn of(r: Result<T, belfry_client::Error>) -> Probe<T> {
        r.map_or_else(|e| Probe::Error(e.to_string()), Probe::Ok)
    }

    fn failed(&self) -> bool {
        matches!(self, Probe::Error(_))
    }
}

async fn dump(ctx: &Ctx, out: PathBuf) -> Result<String, CliError> {
    let cluster = ctx.client.cluster().await?;
    let mut tasks = tokio::task::JoinSet::new();
    for member in cluster.members.clone() {
        // The node that answered is asked where it was reached: its advertised address may be
        // one only its cluster resolves (a container's name).
        let addr = if member.id == cluster.node { Some(ctx.client.endpoint()) } else { member.http_addr.as_deref() };
        let client = addr.map(|a| ctx.client_for(a));
        tasks.spawn(dump_node(member, client));
    }
    let mut nodes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        nodes.push(done.map_err(|e| CliError::Local(format!("dump task failed: {e}")))?);
    }
    nodes.sort_by_key(|n| n.id);
    let failures = nodes
        .iter()
        .map(|n| [n.cluster.failed(), n.healthz.failed(), n.readyz.failed(), n.metrics.failed()])
        .flat_map(|f| f.into_iter().filter(|&x| x))
        .count();
    let dump = Dump {
        generated_at: rfc3339(chrono::Utc::now()),
        endpoint: ctx.client.endpoint().to_string(),
        cli_version: env!("CARGO_PKG_VERSION"),
        cluster,
        nodes,
    };
    let text = json(&dump)?;
    if out.as_os_str() == "-" {
        return Ok(text);
    }
    std::fs::write(&out, &text).map_err(|e| CliError::Local(format!("writing {}: {e}", out.display())))?;
    let summary = format!("wrote {}: {} nodes, {failures} failed requests\n", out.display(), dump.nodes.len());
    if failures > 0 {
        return Err(CliError::Incomplete(format!(
            "{} (each with its error under nodes[] in the file)",
            summary.trim_end()
        )));
    }
    Ok(match ctx.output {
        Output::Table => summary,
        Output::Json => json(&serde_json::json!({"out": out, "nodes": dump.nodes.len(), "failed_requests": failures}))?,
    })
}

async fn dump_node(member: MemberView, client: Option<Result<Client, CliError>>) -> NodeDump {
    let client = match client {
        Some(Ok(c)) => c,
        unusable => {
            let why = match unusable {
                Some(Err(e)) => e.to_string(),
                _ => format!(
                    "HTTP address unknown: the member probe failed ({})",
                    member.error.as_deref().unwrap_or("no error given")
                ),
            };
            return NodeDump {
                id: member.id,
                http_addr: member.http_addr,
                cluster: Probe::Error(why.clone()),
                healthz: Probe::Error(why.clone()),
                readyz: Probe::Error(why.clone()),
                metrics: Probe::Error(why),
            };
        }
    };
    let (cluster, healthz, readyz, metrics) =
        tokio::join!(client.cluster(), client.healthz(), client.readyz(), client.metrics());
    NodeDump {
        id: member.id,
        http_addr: member.http_addr,
        cluster: Probe::of(cluster),
        healthz: Probe::of(healthz),
        readyz: Probe::of(readyz),
        metrics: Probe::of(metrics),
    }
}
