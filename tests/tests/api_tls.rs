//! TLS on the HTTP API (`--http-tls-cert`, `--http-tls-key`): the API answers over https to a
//! client that trusts its CA (the CLI with `--ca-cert`), and to nothing in plaintext.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use belfry_tests::{binary, certs_dir, free_ports, wait_for, TOKEN};

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn https_client(ca: &Path) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    for cert in reqwest::Certificate::from_pem_bundle(&std::fs::read(ca)?)? {
        builder = builder.add_root_certificate(cert);
    }
    Ok(builder.build()?)
}

#[tokio::test]
async fn the_api_over_tls_answers_trusting_clients_only() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("api-certs");
    let made = Command::new(binary())
        .args(["certs", "--nodes", "1", "--san", "localhost,127.0.0.1", "--dir"])
        .arg(&certs)
        .output()?;
    anyhow::ensure!(made.status.success(), "belfry certs: {}", String::from_utf8_lossy(&made.stderr));
    let ports = free_ports(2);
    let log = std::fs::File::create(dir.path().join("node.log"))?;
    let child = Command::new(binary())
        .args(["serve", "--id", "1", "--http-addr", &format!("127.0.0.1:{}", ports[0])])
        .args(["--grpc-addr", &format!("127.0.0.1:{}", ports[1])])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--http-tls-cert")
        .arg(certs.join("node-1.pem"))
        .arg("--http-tls-key")
        .arg(certs.join("node-1-key.pem"))
        .env("BELFRY_BOOTSTRAP_TOKEN", TOKEN)
        .env("BELFRY_PEER_CERTS_DIR", certs_dir())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let _node = Node(child);
    let https = format!("https://127.0.0.1:{}", ports[0]);
    let client = https_client(&certs.join("ca.pem"))?;
    wait_for(Duration::from_secs(20), "the node to be ready over https", || async {
        client.get(format!("{https}/readyz")).send().await.ok().filter(|r| r.status().is_success())
    })
    .await?;

    // The CLI with the CA: a token-checked read works.
    let cli = |ca: Option<&Path>| {
        let mut c = Command::new(binary());
        c.args(["--endpoint", &https, "-o", "json"]).env("BELFRY_TOKEN", TOKEN).env_remove("BELFRY_CA_CERT");
        if let Some(ca) = ca {
            c.arg("--ca-cert").arg(ca);
        }
        c.args(["cluster", "status"]);
        c.output()
    };
    let ok = cli(Some(&certs.join("ca.pem")))?;
    assert!(ok.status.success(), "belfry cluster status over https: {}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"leader\""), "{}", String::from_utf8_lossy(&ok.stdout));
    // Without it the server's certificate is not trusted.
    let untrusted = cli(None)?;
    assert!(!untrusted.status.success(), "a client without the CA trusted the server");
    // Plaintext to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{}/healthz", ports[0])).send().await;
    assert!(plain.is_err(), "plaintext was answered: {plain:?}");
    Ok(())
}
