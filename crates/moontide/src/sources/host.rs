//! `host`: this machine's CPU %, memory % and network receive / transmit
//! bytes per second, from the `sysinfo` crate.

use super::{QueryResult, Value};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, Networks, RefreshKind, System};

/// `type = "host"`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Count only these network interfaces (default: all but loopback). One
    /// the machine lacks fails the network readings (a typo must not read as
    /// no traffic).
    #[serde(default)]
    pub interfaces: Option<Vec<String>>,
}

impl HostConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        match &self.interfaces {
            Some(list) if list.is_empty() => {
                vec!["interfaces: list at least one, or leave the setting out to count every interface but lo".into()]
            }
            _ => Vec::new(),
        }
    }
}

/// The queries a `host` source answers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HostMetric {
    /// `cpu`: all cores busy, in percent (0-100).
    Cpu,
    /// `memory`: memory in use, in percent.
    Memory,
    /// `net_rx`: bytes received per second.
    NetRx,
    /// `net_tx`: bytes sent per second.
    NetTx,
}

impl HostMetric {
    /// Reads a query name.
    pub fn parse(q: &str) -> Result<Self, String> {
        match q {
            "cpu" => Ok(HostMetric::Cpu),
            "memory" => Ok(HostMetric::Memory),
            "net_rx" => Ok(HostMetric::NetRx),
            "net_tx" => Ok(HostMetric::NetTx),
            other => Err(format!("unknown host metric `{other}`; use cpu, memory, net_rx or net_tx")),
        }
    }
}

struct Sampler {
    system: System,
    networks: Networks,
    last: Option<Instant>,
    values: [f64; 4],
    /// Why the network values cannot be read: listed interfaces the machine lacks.
    net_error: Option<String>,
}

/// A live `host` source. Rates are measured between two reads; the first read
/// takes a short baseline (250 ms).
pub struct Host {
    interfaces: Option<Vec<String>>,
    sampler: Arc<Mutex<Sampler>>,
}

const BASELINE: Duration = Duration::from_millis(250);

impl Host {
    /// A sampler for this machine.
    pub fn new(config: &HostConfig) -> Result<Self, String> {
        let kind = RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_usage())
            .with_memory(MemoryRefreshKind::nothing().with_ram());
        let sampler = Sampler {
            system: System::new_with_specifics(kind).map_err(|e| format!("cannot read this machine's metrics: {e}"))?,
            networks: Networks::new_with_refreshed_list()
                .map_err(|e| format!("cannot read this machine's network counters: {e}"))?,
            last: None,
            values: [0.0; 4],
            net_error: None,
        };
        Ok(Host { interfaces: config.interfaces.clone(), sampler: Arc::new(Mutex::new(sampler)) })
    }

    /// Samples the machine (off the async threads) and answers each query.
    pub async fn read(&self, queries: &[String]) -> Vec<QueryResult> {
        let sampler = self.sampler.clone();
        let interfaces = self.interfaces.clone();
        let values = tokio::task::spawn_blocking(move || {
            let mut s = sampler.lock().unwrap_or_else(|p| p.into_inner());
            sample(&mut s, interfaces.as_deref())
        })
        .await;
        let (values, net_error) = match values {
            Ok(v) => v,
            Err(e) => return queries.iter().map(|_| Err(format!("host sampler failed: {e}"))).collect(),
        };
        queries
            .iter()
            .map(|q| {
                let m = HostMetric::parse(q)?;
                if let (HostMetric::NetRx | HostMetric::NetTx, Some(e)) = (m, &net_error) {
                    return Err(e.clone());
                }
                let v = match m {
                    HostMetric::Cpu => values[0],
                    HostMetric::Memory => values[1],
                    HostMetric::NetRx => values[2],
                    HostMetric::NetTx => values[3],
                };
                Ok(Value { value: v, measured_at: None })
            })
            .collect()
    }
}

fn refresh(s: &mut Sampler) {
    s.system.refresh_cpu_usage();
    s.system.refresh_memory();
    s.networks.refresh(true);
}

/// The four values, and why the network ones cannot be read (if so).
fn sample(s: &mut Sampler, interfaces: Option<&[String]>) -> ([f64; 4], Option<String>) {
    let now = Instant::now();
    let elapsed = match s.last {
        // Two readers within a moment share one sample.
        Some(t) if now.duration_since(t) < Duration::from_millis(100) => return (s.values, s.net_error.clone()),
        Some(t) => now.duration_since(t),
        None => {
            refresh(s);
            std::thread::sleep(BASELINE.max(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL));
            BASELINE.max(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL)
        }
    };
    refresh(s);
    s.last = Some(Instant::now());
    let cpu = s.system.global_cpu_usage() as f64;
    let total = s.system.total_memory() as f64;
    let memory = if total > 0.0 { s.system.used_memory() as f64 / total * 100.0 } else { 0.0 };
    let (mut rx, mut tx) = (0u64, 0u64);
    for (name, data) in s.networks.iter() {
        let wanted = match interfaces {
            Some(list) => list.iter().any(|i| name.to_str() == Some(i.as_str())),
            None => name != "lo",
        };
        if wanted {
            rx += data.received();
            tx += data.transmitted();
        }
    }
    let secs = elapsed.as_secs_f64().max(0.001);
    s.values = [cpu, memory, rx as f64 / secs, tx as f64 / secs];
    s.net_error = missing_interfaces(&s.networks, interfaces.unwrap_or_default());
    (s.values, s.net_error.clone())
}

/// Which of `listed` this machine lacks, with the interfaces it has, or None when it has them all.
fn missing_interfaces(networks: &Networks, listed: &[String]) -> Option<String> {
    let missing: Vec<String> = listed
        .iter()
        .filter(|i| !networks.keys().any(|n| n.to_str() == Some(i.as_str())))
        .map(|i| format!("`{i}`"))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut have: Vec<String> = networks.keys().map(|n| n.to_string_lossy().into_owned()).collect();
    have.sort();
    let have = if have.is_empty() { "none".to_string() } else { have.join(", ") };
    Some(format!(
        "interfaces: this machine has no interface {} (it has {have}); fix `interfaces` or leave it out",
        missing.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_interface_list_is_refused() {
        assert!(HostConfig { interfaces: None }.validate().is_empty());
        assert!(HostConfig { interfaces: Some(vec!["lo".into()]) }.validate().is_empty());
        let errs = crate::sources::SourceConfig::Host(HostConfig { interfaces: Some(vec![]) }).validate();
        assert!(errs.len() == 1 && errs[0].contains("interfaces"), "{errs:?}");
    }

    #[tokio::test]
    async fn an_interface_the_machine_lacks_fails_the_network_readings() {
        let q: Vec<String> = ["net_rx", "net_tx", "cpu"].iter().map(|s| s.to_string()).collect();
        let host = Host::new(&HostConfig { interfaces: Some(vec!["nope0".into()]) }).unwrap();
        let got = host.read(&q).await;
        for r in &got[..2] {
            let err = r.as_ref().unwrap_err();
            let has = err.split("it has ").nth(1).unwrap_or_default();
            assert!(err.contains("`nope0`") && has.split([',', ')']).any(|n| n.trim() == "lo"), "{err}");
        }
        assert!(got[2].is_ok(), "cpu does not depend on the interfaces: {:?}", got[2]);
        // one typo among real names fails them too: its traffic must not silently drop out
        let host = Host::new(&HostConfig { interfaces: Some(vec!["lo".into(), "nope0".into()]) }).unwrap();
        let err = host.read(&q).await.remove(0).unwrap_err();
        assert!(err.contains("`nope0`") && !err.contains("`lo`"), "{err}");
    }

    #[test]
    fn query_names_are_checked() {
        assert_eq!(HostMetric::parse("cpu"), Ok(HostMetric::Cpu));
        assert!(HostMetric::parse("disk").unwrap_err().contains("cpu, memory, net_rx or net_tx"));
    }

    #[tokio::test]
    async fn reads_plausible_values_from_this_machine() {
        let host = Host::new(&HostConfig { interfaces: Some(vec!["lo".into()]) }).unwrap();
        let q: Vec<String> = ["cpu", "memory", "net_rx", "net_tx"].iter().map(|s| s.to_string()).collect();
        let first = host.read(&q).await;
        // Loopback traffic between the two reads must show up in net_rx.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            use std::io::Read;
            let (mut c, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            c.read_to_end(&mut buf).unwrap();
            buf.len()
        });
        {
            use std::io::Write;
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(&vec![7u8; 1 << 20]).unwrap();
        }
        assert_eq!(server.join().unwrap(), 1 << 20);
        std::thread::sleep(Duration::from_millis(150));
        let second = host.read(&q).await;
        for r in first.iter().chain(second.iter()) {
            let v = r.as_ref().unwrap().value;
            assert!(v.is_finite() && v >= 0.0, "{v}");
        }
        let cpu = second[0].as_ref().unwrap().value;
        let mem = second[1].as_ref().unwrap().value;
        assert!(cpu <= 100.0 && mem > 0.0 && mem <= 100.0, "cpu {cpu} mem {mem}");
        assert!(second[2].as_ref().unwrap().value > 0.0, "1 MiB over loopback must show in net_rx");
    }
}
