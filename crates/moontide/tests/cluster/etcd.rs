//! A real etcd (Debian's `etcd-server` package) on 127.0.0.1, in a temp dir,
//! stopped when dropped; over plain HTTP, or over TLS asking every client
//! for a certificate from the test's CA.

use crate::pki::Pki;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Etcd {
    pub url: String,
    tls: Option<etcd_client::TlsOptions>,
    child: Child,
    _dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Etcd {
    /// Starts etcd, or returns None (test skipped) when it is not installed outside CI.
    pub async fn start() -> Option<Etcd> {
        Etcd::start_with(None).await
    }

    /// Starts etcd serving clients over TLS with the PKI's server certificate,
    /// and asking each for a client certificate signed by its CA.
    pub async fn start_tls(pki: &Pki) -> Option<Etcd> {
        Etcd::start_with(Some(pki)).await
    }

    async fn start_with(pki: Option<&Pki>) -> Option<Etcd> {
        let bin = std::path::Path::new("/usr/bin/etcd");
        if !bin.exists() {
            assert!(std::env::var_os("CI").is_none(), "CI must install etcd-server (.ci/run does)");
            eprintln!("skipped: /usr/bin/etcd is missing (apt-get install etcd-server)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let scheme = if pki.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new(bin);
        cmd.args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("t={peer_url}")])
            .args(["--auto-compaction-retention", "1"]);
        let mut tls = None;
        if let Some(pki) = pki {
            cmd.arg("--cert-file").arg(pki.path("server.pem"));
            cmd.arg("--key-file").arg(pki.path("server.key"));
            cmd.arg("--trusted-ca-file").arg(pki.path("ca.pem"));
            cmd.arg("--client-cert-auth");
            let read = |name: &str| std::fs::read(pki.path(name)).unwrap();
            tls = Some(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(read("ca.pem")))
                    .identity(etcd_client::Identity::from_pem(read("client.pem"), read("client.key"))),
            );
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("etcd.log")).unwrap())
            .spawn()
            .unwrap();
        let etcd = Etcd { url, tls, child, _dir: dir };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = etcd.connect().await
                && c.get("ping", None).await.is_ok()
            {
                return Some(etcd);
            }
            assert!(Instant::now() < end, "etcd did not answer within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn connect(&self) -> Result<etcd_client::Client, etcd_client::Error> {
        let opts = self.tls.clone().map(|t| etcd_client::ConnectOptions::new().with_tls(t));
        etcd_client::Client::connect([self.url.as_str()], opts).await
    }

    /// Stops etcd now (as a crash would); dropping it later is harmless.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn client(&self) -> etcd_client::Client {
        self.connect().await.unwrap()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
