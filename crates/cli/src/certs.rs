//! `belfry certs`: a cluster CA and node certificates for peer TLS (docs/SECURITY.md).
//!
//! The CA is made once per directory (`ca.pem`, `ca-key.pem`) and reused by later runs, so a
//! node added later gets a certificate the running cluster accepts:
//! `belfry certs --dir DIR --nodes 4`. Node `n` gets `node-n.pem` and `node-n-key.pem`,
//! naming `node-n.belfry`: the name that binds its raft id (see `belfry_node::peer_tls`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The CA's subject; node certificates name it as their issuer.
const CA_NAME: &str = "belfry cluster CA";
/// How long a node certificate is valid.
const NODE_DAYS: i64 = 825;
/// How long the CA is valid.
const CA_DAYS: i64 = 3650;

/// Flags of `belfry certs`.
#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    /// Where the CA and the node certificates are written (and an existing CA is read).
    #[arg(long, default_value = "./belfry-certs")]
    pub dir: PathBuf,
    /// Node ids to make certificates for, comma-separated (`1,2,3`) or a range (`1-5`).
    #[arg(long, default_value = "1-3")]
    pub nodes: String,
    /// Write node certificates again even when they exist.
    #[arg(long)]
    pub force: bool,
    /// More names for the node certificates, comma-separated DNS names or IP addresses
    /// (`localhost,127.0.0.1`), so they can also serve the HTTP API over TLS
    /// (`--http-tls-cert`).
    #[arg(long, value_delimiter = ',')]
    pub san: Vec<String>,
}

/// Parses `1,2,3`, `1-5` or a mix of both.
pub fn parse_ids(spec: &str) -> anyhow::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let id = |s: &str| -> anyhow::Result<u64> {
            match s.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => anyhow::bail!("--nodes: {s:?} is not a node id (a positive integer)"),
            }
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (id(a)?, id(b)?);
                if b < a || b - a >= 1000 {
                    anyhow::bail!("--nodes: {part:?} is not a range of at most 1000 ids");
                }
                ids.extend(a..=b);
            }
            None => ids.push(id(part)?),
        }
    }
    if ids.is_empty() {
        anyhow::bail!("--nodes: no node id given");
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, CA_DAYS);
    Ok(params)
}

/// Valid from yesterday (a node whose clock is a little behind still accepts it) for `days`.
fn validity(params: &mut CertificateParams, days: i64) {
    use chrono::Datelike as _;
    let day = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    let today = chrono::Utc::now().date_naive();
    params.not_before = day(today - chrono::Days::new(1));
    params.not_after = day(today + chrono::Days::new(days.unsigned_abs()));
}

fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    crate::private_file::write(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

fn write_public(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The CA of `dir`: read when `ca-key.pem` exists, made (and written) otherwise.
fn ca(dir: &Path) -> anyhow::Result<(Issuer<'static, KeyPair>, bool)> {
    let key_path = dir.join("ca-key.pem");
    let params = ca_params()?;
    if key_path.exists() {
        let pem = std::fs::read_to_string(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
        let key = KeyPair::from_pem(&pem).with_context(|| format!("{}: not a PEM private key", key_path.display()))?;
        if !dir.join("ca.pem").exists() {
            anyhow::bail!("{} exists without ca.pem beside it", key_path.display());
        }
        return Ok((Issuer::new(params, key), false));
    }
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write_secret(&key_path, &key.serialize_pem())?;
    write_public(&dir.join("ca.pem"), &cert.pem())?;
    Ok((Issuer::new(params, key), true))
}

/// Writes the certificate and key of node `id`, signed by `issuer`.
fn node(dir: &Path, issuer: &Issuer<'_, KeyPair>, id: u64, san: &[String]) -> anyhow::Result<()> {
    let names = std::iter::once(belfry_node::peer_tls::peer_name(id)).chain(san.iter().cloned()).collect::<Vec<_>>();
    let mut params = CertificateParams::new(names).context("--san")?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("belfry node {id}"));
    params.distinguished_name = name;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, NODE_DAYS);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    write_secret(&dir.join(format!("node-{id}-key.pem")), &key.serialize_pem())?;
    write_public(&dir.join(format!("node-{id}.pem")), &cert.pem())
}

/// Makes (or reuses) the CA in `dir` and a certificate for each of `ids` that has none (or
/// for all, with `force`); returns what it did, a line per file.
pub fn ensure(dir: &Path, ids: &[u64], san: &[String], force: bool) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (issuer, made) = ca(dir)?;
    let shown = dir.display();
    let ca_line = if made { "made CA " } else { "using CA" };
    let mut lines = vec![format!("{ca_line} {shown}/ca.pem (keep {shown}/ca-key.pem off the nodes)")];
    for id in ids {
        let cert = dir.join(format!("node-{id}.pem"));
        if cert.exists() && !force {
            lines.push(format!("kept     {} (--force writes it again)", cert.display()));
            continue;
        }
        node(dir, &issuer, *id, san)?;
        lines.push(format!("wrote    {} and node-{id}-key.pem", cert.display()));
    }
    Ok(lines)
}

/// `belfry certs`: [`ensure`], printing what it did.
pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    let san: Vec<String> = args.san.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if san.iter().any(|s| s.contains('*')) {
        anyhow::bail!("--san: no wildcard names (a certificate must name one node)");
    }
    for line in ensure(&args.dir, &parse_ids(&args.nodes)?, &san, args.force)? {
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_take_lists_and_ranges() {
        assert_eq!(parse_ids("1,2,3").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_ids("3-5,1").unwrap(), vec![1, 3, 4, 5]);
        assert!(parse_ids("0").is_err());
        assert!(parse_ids("5-3").is_err());
        assert!(parse_ids("1-100000").is_err());
        assert!(parse_ids("").is_err());
    }

    #[test]
    fn certificates_load_as_the_node_they_name_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        run(CertsArgs { dir: dir.path().into(), nodes: "1-2".into(), force: false, san: vec![] }).unwrap();
        // A second run reuses the CA, so node 3's certificate chains to the same root.
        let ca_before = std::fs::read(dir.path().join("ca.pem")).unwrap();
        run(CertsArgs { dir: dir.path().into(), nodes: "3".into(), force: false, san: vec!["localhost".into()] })
            .unwrap();
        assert_eq!(ca_before, std::fs::read(dir.path().join("ca.pem")).unwrap());
        let load = |id: u64, file: u64| {
            belfry_node::peer_tls::PeerTls::load(
                id,
                &dir.path().join("ca.pem"),
                &dir.path().join(format!("node-{file}.pem")),
                &dir.path().join(format!("node-{file}-key.pem")),
            )
        };
        for id in 1..=3 {
            load(id, id).unwrap_or_else(|e| panic!("node {id}: {e}"));
        }
        let wrong = load(1, 2).expect_err("node 2's certificate is not node 1's");
        assert!(wrong.to_string().contains("not a certificate of node 1"), "{wrong}");
    }
}
