//! A real DNS server for the discovery tests: Debian's `dnsmasq` on a loopback port, answering
//! only from a hosts file the test rewrites (SIGHUP makes dnsmasq read it again), with a short
//! TTL. Nothing is forwarded anywhere (`--no-resolv`), the system's files are not read, and
//! names under `.test` (RFC 2606) that the file does not list get NXDOMAIN.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{free_port, tcp_accepts, Process};

/// Where Debian's dnsmasq-base puts the binary (sbin is not on every user's PATH).
const DNSMASQ: &str = "/usr/sbin/dnsmasq";

pub struct Dnsmasq {
    pub port: u16,
    hosts: PathBuf,
    pub process: Process,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Serves `name` (under `.test`) as the A records `addresses`, with a TTL of `ttl_s` seconds.
    pub fn start(name: &str, addresses: &[Ipv4Addr], ttl_s: u32) -> Dnsmasq {
        assert!(name.ends_with(".test"), "{name}: the test DNS server answers for .test names only");
        assert!(
            Path::new(DNSMASQ).exists(),
            "{DNSMASQ} is missing: the discovery tests need Debian's dnsmasq-base (apt-get install dnsmasq-base; \
             scripts/lib/common.sh lists it in TFGATE_TEST_APT_PACKAGES)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        // Started as root, dnsmasq drops to an unprivileged user, which must still be able to
        // read the hosts file again on SIGHUP.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let hosts = dir.path().join("hosts");
        let port = free_port();
        Dnsmasq::write_hosts_file(&hosts, name, addresses);
        let mut command = Command::new(DNSMASQ);
        command
            .arg("--keep-in-foreground")
            .arg("--conf-file=/dev/null")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg("--local=/test/")
            .arg(format!("--addn-hosts={}", hosts.display()))
            .arg(format!("--port={port}"))
            .arg("--listen-address=127.0.0.1")
            .arg("--bind-interfaces")
            .arg(format!("--local-ttl={ttl_s}"))
            .arg(format!("--pid-file={}", dir.path().join("dnsmasq.pid").display()))
            .arg("--log-queries")
            .arg("--log-facility=-");
        let mut process = Process::spawn("dnsmasq", command, &dir.path().join("dnsmasq.log"));
        process.wait_until("its TCP port accepts", || tcp_accepts(port));
        Dnsmasq { port, hosts, process, _dir: dir }
    }

    /// `127.0.0.1:PORT`, for `backend.resolver`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Serves `name` as `addresses` from now on.
    pub fn set(&self, name: &str, addresses: &[Ipv4Addr]) {
        Dnsmasq::write_hosts_file(&self.hosts, name, addresses);
        self.process.signal("HUP");
    }

    fn write_hosts_file(path: &Path, name: &str, addresses: &[Ipv4Addr]) {
        let text: String = addresses.iter().map(|a| format!("{a} {name}\n")).collect();
        // Written aside and renamed, so dnsmasq never reads half a file.
        let fresh = path.with_extension("new");
        fs::write(&fresh, text).expect("hosts file");
        fs::set_permissions(&fresh, fs::Permissions::from_mode(0o644)).expect("chmod");
        fs::rename(&fresh, path).expect("hosts file");
    }
}
