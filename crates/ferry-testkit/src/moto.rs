//! A moto server per test, behind Ferry's authorizing gateway: [`MotoServer::start`] spawns
//! `moto_server` on a free port of `127.0.0.1`, waits until it answers, then starts the gateway
//! (`tests/gateway/gateway.mjs`) in front of it; [`MotoServer::endpoint_url`] is the gateway's.
//! Both are killed on drop. Each server is independent, so tests can run in parallel threads.
//!
//! moto itself enforces no bucket, key or trust policy and no identity-policy condition; the
//! gateway decides every request as IAM would (iam-simulate over the caller's identity policies
//! as moto holds them, the bucket, key and topic policies, and the KMS calls S3 makes for SSE-KMS
//! objects) and answers a denial with AWS's AccessDenied shape. The testkit's own credentials
//! (`testing`, `test`, and sessions of the `ferry-test` role in any account) are the accounts'
//! administrators, as a test set-up is; every other principal (a function's role, the batch
//! role, a copier session) is held to its policies. Each decision is recorded in
//! [`MotoServer::decisions`]. `FERRY_GATEWAY=off` runs a test straight against moto (to tell a
//! gateway problem from a moto one; never in CI).
//!
//! The moto binary is `$FERRY_MOTO_SERVER` or else `<workspace root>/.venv/bin/moto_server`
//! (made by `bash scripts/setup-python`); the gateway needs Node.js and
//! `tests/gateway/node_modules` (`bash tests/gateway/run.sh --install-only`).
//!
//! moto does not implement S3 Control jobs: the gateway answers them (see [`crate::s3control`]).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_s3::config::Credentials;

/// How long [`MotoServer::start`] waits for the server to answer HTTP.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`MotoServer::start`] waits for the gateway's `listening <port>` line.
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many ports [`MotoServer::start`] tries when moto cannot bind one.
const BIND_ATTEMPTS: usize = 5;

/// Ports handed out in this process, never reused: two servers started in parallel threads
/// cannot race for the same port.
static USED_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
static SERVER_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A running moto server and its gateway, killed (and waited for) on drop.
pub struct MotoServer {
    child: Child,
    port: u16,
    log_dir: PathBuf,
    log_path: PathBuf,
    gateway: Option<Gateway>,
}

/// The authorizing gateway in front of the server (`tests/gateway/gateway.mjs`).
struct Gateway {
    child: Child,
    port: u16,
    /// Kept open: the gateway exits when it closes (`--exit-with-stdin`), so a test process
    /// that dies leaves no gateway behind.
    _stdin: ChildStdin,
    record: PathBuf,
}

/// One decision of the gateway (a line of its `--record` file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayDecision {
    /// `Allow` or `Deny`.
    pub decision: String,
    /// The caller: an assumed-role session ARN, a user ARN, or an admin key's account root.
    pub principal: String,
    /// The IAM action, e.g. `s3:GetObject` (empty for administrators, which are not checked).
    pub action: String,
    pub resource: String,
    pub admin: bool,
    /// Why a request was denied (AWS's message).
    pub reason: Option<String>,
}

impl MotoServer {
    /// The account moto acts in for any credentials it did not issue itself.
    pub const DEFAULT_ACCOUNT: &'static str = "123456789012";
    /// The role [`MotoServer::sdk_config_for_account`] assumes, with the account filled in.
    pub const ROLE_NAME: &'static str = "ferry-test";

    /// Starts a fresh server and waits until it answers HTTP. Panics with the reason (and the
    /// log file's path) if it cannot.
    pub fn start() -> MotoServer {
        let binary = moto_binary();
        if !binary.is_file() {
            panic!(
                "moto_server not found at {}: run `bash scripts/setup-python` first \
                 (or set FERRY_MOTO_SERVER to a moto_server binary)",
                binary.display()
            );
        }
        let seq = SERVER_SEQ.fetch_add(1, Ordering::Relaxed);
        let log_dir =
            std::env::temp_dir().join(format!("ferry-testkit-moto-{}-{seq}", std::process::id()));
        std::fs::create_dir_all(&log_dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_dir.display()));
        let log_path = log_dir.join("moto_server.log");

        for _ in 0..BIND_ATTEMPTS {
            let port = free_port();
            let log = File::create(&log_path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
            let stderr = log
                .try_clone()
                .unwrap_or_else(|e| panic!("cannot share {}: {e}", log_path.display()));
            let mut child = Command::new(&binary)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_PORT", port.to_string())
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(stderr))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));

            match wait_until_ready(&mut child, port) {
                Ready::Yes => {
                    let mut server = MotoServer {
                        child,
                        port,
                        log_dir,
                        log_path,
                        gateway: None,
                    };
                    if gateway_wanted() {
                        server.gateway = Some(start_gateway(port, &server.log_dir));
                    }
                    return server;
                }
                Ready::Exited(status) => {
                    let log = read_log(&log_path);
                    if log.contains("in use") {
                        continue; // another process took the port between our probe and moto
                    }
                    panic!(
                        "moto_server exited ({status}) before answering; log {}:\n{log}",
                        log_path.display()
                    );
                }
                Ready::TimedOut => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "moto_server did not answer GET /moto-api/ on port {port} within {:?}; \
                         log {}:\n{}",
                        READY_TIMEOUT,
                        log_path.display(),
                        read_log(&log_path)
                    );
                }
            }
        }
        panic!(
            "moto_server could not bind a port in {BIND_ATTEMPTS} attempts; last log {}:\n{}",
            log_path.display(),
            read_log(&log_path)
        );
    }

    /// Points a child process (e.g. the `ferry` binary) at this server and nothing else: a clean
    /// environment with only PATH, a scratch HOME (no ~/.aws), test credentials, the region and
    /// `AWS_ENDPOINT_URL`.
    pub fn point_command<'c>(
        &self,
        command: &'c mut std::process::Command,
        home: &Path,
        region: &str,
    ) -> &'c mut std::process::Command {
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("AWS_ENDPOINT_URL", self.endpoint_url())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", region)
            .env("AWS_EC2_METADATA_DISABLED", "true")
    }

    /// `http://127.0.0.1:<port>`, the endpoint of every service on this server: the gateway's.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// The port tests reach the server on (the gateway's).
    pub fn port(&self) -> u16 {
        self.gateway.as_ref().map_or(self.port, |g| g.port)
    }

    /// Every decision the gateway made so far, in order (empty with `FERRY_GATEWAY=off`).
    pub fn decisions(&self) -> Vec<GatewayDecision> {
        let Some(gateway) = &self.gateway else {
            return Vec::new();
        };
        let text = std::fs::read_to_string(&gateway.record).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|v| {
                let text = |k: &str| {
                    v.get(k)
                        .and_then(|x| x.as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                GatewayDecision {
                    decision: text("decision"),
                    principal: text("principal"),
                    action: text("action"),
                    resource: text("resource"),
                    admin: v.get("admin").and_then(|a| a.as_bool()).unwrap_or(false),
                    reason: v.get("reason").and_then(|r| r.as_str()).map(str::to_string),
                }
            })
            .collect()
    }

    /// The gateway's denials so far.
    pub fn denials(&self) -> Vec<GatewayDecision> {
        self.decisions()
            .into_iter()
            .filter(|d| d.decision == "Deny")
            .collect()
    }

    /// Whether requests go through the gateway (always, unless `FERRY_GATEWAY=off`).
    pub fn authorizes(&self) -> bool {
        self.gateway.is_some()
    }

    /// The file holding the server's stdout and stderr (removed on drop unless panicking).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// An SDK config for this server in moto's default account ([`MotoServer::DEFAULT_ACCOUNT`]):
    /// static test credentials, `region`, this endpoint. Reads no environment variables, no
    /// `~/.aws` files and no instance metadata.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        self.config_with(
            Credentials::new("testing", "testing", None, None, "ferry-testkit"),
            region,
        )
        .await
    }

    /// An SDK config acting in `account_id`: assumes `arn:aws:iam::<account_id>:role/ferry-test`
    /// on this server (moto needs no such role to exist) and uses the credentials it returns.
    pub async fn sdk_config_for_account(&self, account_id: &str, region: &str) -> SdkConfig {
        let base = self.sdk_config(region).await;
        let role_arn = format!("arn:aws:iam::{account_id}:role/{}", Self::ROLE_NAME);
        let assumed = aws_sdk_sts::Client::new(&base)
            .assume_role()
            .role_arn(&role_arn)
            .role_session_name("ferry-testkit")
            .send()
            .await
            .unwrap_or_else(|e| panic!("moto sts:AssumeRole {role_arn}: {e:?}"));
        let c = assumed
            .credentials()
            .unwrap_or_else(|| panic!("moto sts:AssumeRole {role_arn} returned no credentials"));
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "ferry-testkit-assumed",
        );
        self.config_with(credentials, region).await
    }

    /// Forgets every resource in every account (`POST /moto-api/reset`, through the gateway so
    /// that it forgets its policies, owners, jobs and Lambda invocations too). Credentials from
    /// [`MotoServer::sdk_config_for_account`] then act in the default account again: take new ones.
    pub async fn reset(&self) {
        let port = self.port();
        let status = tokio::task::spawn_blocking(move || {
            http_status(port, "POST", "/moto-api/reset", Duration::from_secs(10))
        })
        .await
        .expect("reset task panicked");
        match status {
            Ok(200) => {}
            Ok(other) => panic!("moto reset answered {other}"),
            Err(e) => panic!("moto reset failed: {e}"),
        }
    }

    /// An SDK config for this server with `credentials` (say, a role session's).
    pub async fn sdk_config_with(&self, credentials: Credentials, region: &str) -> SdkConfig {
        self.config_with(credentials, region).await
    }

    async fn config_with(&self, credentials: Credentials, region: &str) -> SdkConfig {
        // An empty profile file and an empty environment: nothing from the host leaks in.
        let no_profiles = EnvConfigFiles::builder()
            .with_contents(EnvConfigFileKind::Config, "")
            .build();
        #[allow(deprecated)] // `profile_files` takes the `EnvConfigFiles` it was renamed to
        aws_config::defaults(BehaviorVersion::latest())
            .empty_test_environment()
            .profile_files(no_profiles)
            .credentials_provider(credentials)
            .region(Region::new(region.to_string()))
            .endpoint_url(self.endpoint_url())
            .load()
            .await
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Some(gateway) = &mut self.gateway {
            let _ = gateway.child.kill();
            let _ = gateway.child.wait();
            if let Ok(out) = std::env::var("FERRY_GATEWAY_RECORD") {
                append_record(&gateway.record, Path::new(&out));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("moto_server log kept at {}", self.log_path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

/// An S3 client for `config` with path-style addressing (`<endpoint>/<bucket>/<key>`): moto
/// cannot serve virtual-host style (`<bucket>.<host>`) on a local endpoint. (The SDK already falls
/// back to path style for an IP-address endpoint; forcing it also covers `localhost` endpoints.)
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

fn gateway_wanted() -> bool {
    let off = matches!(
        std::env::var("FERRY_GATEWAY").as_deref(),
        Ok("off" | "0" | "false")
    );
    if off && std::env::var_os("CI").is_some() {
        panic!("FERRY_GATEWAY=off in CI: the suite runs only with the authorizing gateway");
    }
    !off
}

/// Starts `node tests/gateway/gateway.mjs` in front of moto on `moto_port`; panics with the
/// reason (and its log) if it does not say it listens.
fn start_gateway(moto_port: u16, log_dir: &Path) -> Gateway {
    let root = workspace_root();
    let script = root.join("tests/gateway/gateway.mjs");
    if !root.join("tests/gateway/node_modules").is_dir() {
        panic!(
            "the authorizing gateway's packages are missing: run `bash tests/gateway/run.sh --install-only` \
             (scripts/test does), or set FERRY_GATEWAY=off to run against moto alone"
        );
    }
    let record = log_dir.join("gateway-decisions.jsonl");
    let log_path = log_dir.join("gateway.log");
    let log = File::create(&log_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
    let mut child = Command::new(std::env::var("FERRY_NODE").unwrap_or_else(|_| "node".into()))
        .arg(&script)
        .args(["--upstream", &format!("http://127.0.0.1:{moto_port}")])
        .args(["--port", "0", "--exit-with-stdin", "--quiet", "--record"])
        .arg(&record)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node {}: {e}", script.display()));
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let port = rx
        .recv_timeout(GATEWAY_TIMEOUT)
        .ok()
        .and_then(|line| line.trim().strip_prefix("listening ")?.parse::<u16>().ok());
    match port {
        Some(port) => Gateway {
            child,
            port,
            _stdin: stdin,
            record,
        },
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the authorizing gateway did not start within {GATEWAY_TIMEOUT:?}; log {}:\n{}",
                log_path.display(),
                read_log(&log_path)
            );
        }
    }
}

/// Appends one server's decisions to the suite-wide record (`FERRY_GATEWAY_RECORD`), in one
/// append so parallel tests don't interleave lines.
fn append_record(from: &Path, to: &Path) {
    let Ok(text) = std::fs::read_to_string(from) else {
        return;
    };
    if text.is_empty() {
        return;
    }
    if let Ok(mut out) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(to)
    {
        let _ = out.write_all(text.as_bytes());
    }
}

fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FERRY_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    workspace_root().join(".venv/bin/moto_server")
}

/// The nearest directory holding `Cargo.lock`, from `$CARGO_MANIFEST_DIR` (set by `cargo test`)
/// or else the current directory.
pub(crate) fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .expect("neither CARGO_MANIFEST_DIR nor the current directory is available");
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("no Cargo.lock above {}", start.display()))
}

/// A port the OS just reported free and this process has not handed out before.
fn free_port() -> u16 {
    let mut used = USED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let used = used.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
        if used.insert(port) {
            return port;
        }
    }
    panic!("no fresh free port on 127.0.0.1");
}

enum Ready {
    Yes,
    Exited(std::process::ExitStatus),
    TimedOut,
}

fn wait_until_ready(child: &mut Child, port: u16) -> Ready {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Ready::Exited(status);
        }
        if let Ok(200) = http_status(port, "GET", "/moto-api/", Duration::from_secs(2)) {
            // Answered: make sure it was our process and not a stranger on the port.
            return match child.try_wait() {
                Ok(Some(status)) => Ready::Exited(status),
                _ => Ready::Yes,
            };
        }
        if Instant::now() >= deadline {
            return Ready::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request without a body on a fresh connection; returns the status code.
fn http_status(port: u16, method: &str, path: &str, timeout: Duration) -> std::io::Result<u16> {
    http_call(port, method, path, "", timeout).map(|(status, _)| status)
}

/// One plain HTTP/1.1 request to `127.0.0.1:port` (moto's control API, the gateway's harness
/// API): its status and body. An answer that isn't HTTP is an `InvalidData` error.
pub(crate) fn http_call(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP response: {:?}", text.lines().next()),
            )
        })?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read log: {e})"))
}
