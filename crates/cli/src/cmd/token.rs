//! `belfry token create|list|revoke`: API tokens (admin role). A new token is printed once;
//! belfry keeps only its hash.

use belfry_core::api::{NewToken, TokenList, TokenRequest};
use belfry_core::Role;
use clap::{Subcommand, ValueEnum};

use super::table::{opt, Fields, Table};
use super::{json, CliError, Ctx, Output};

/// A role, as the command line takes it.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleArg {
    /// Reads jobs, executions, dead letters and the cluster.
    Viewer,
    /// Also writes jobs and dead letters.
    Editor,
    /// Also changes membership and leadership, and takes backups.
    Operator,
    /// Also manages tokens.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Editor => Role::Editor,
            RoleArg::Operator => Role::Operator,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// `belfry token` subcommands.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token and print it (the only time it is shown).
    Create {
        /// What it may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// What it is for (`ci`, `grafana`): 1 to 64 bytes.
        #[arg(long)]
        name: String,
    },
    /// List tokens: id, role, name, creation (never secrets).
    List,
    /// Revoke a token by id; every node refuses it from then on.
    Revoke {
        /// The token's id (the part between `bf_` and the second `_`).
        id: String,
    },
}

/// Runs a `token` subcommand.
pub async fn run(ctx: &Ctx, command: TokenCommand) -> Result<String, CliError> {
    match command {
        TokenCommand::Create { role, name } => {
            let created = ctx.client.create_token(&TokenRequest { role: role.into(), name }).await?;
            created_text(ctx, &created)
        }
        TokenCommand::List => list_text(ctx, &ctx.client.list_tokens().await?),
        TokenCommand::Revoke { id } => {
            ctx.client.revoke_token(&id).await?;
            Ok(match ctx.output {
                Output::Json => json(&serde_json::json!({ "revoked": id }))?,
                Output::Table => format!("token {id} revoked\n"),
            })
        }
    }
}

fn created_text(ctx: &Ctx, t: &NewToken) -> Result<String, CliError> {
    if ctx.output == Output::Json {
        return json(t);
    }
    eprintln!("store the token now: it is not shown again");
    let mut f = Fields::default();
    f.add("token", &t.token)
        .add("id", &t.view.id)
        .add("role", t.view.role.as_str())
        .add("name", &t.view.name)
        .add("created", &t.view.created_at)
        .add("created by", opt(t.view.created_by.as_ref()));
    Ok(f.render())
}

fn list_text(ctx: &Ctx, list: &TokenList) -> Result<String, CliError> {
    if ctx.output == Output::Json {
        return json(list);
    }
    let mut t = Table::new(&["ID", "ROLE", "NAME", "CREATED", "CREATED BY"]);
    for token in &list.tokens {
        t.row(vec![
            token.id.clone(),
            token.role.as_str().to_string(),
            token.name.clone(),
            token.created_at.clone(),
            opt(token.created_by.as_ref()),
        ]);
    }
    Ok(t.render())
}
