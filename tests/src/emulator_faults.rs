//! The emulator's faults and target health seen from a test: the pending-fault
//! list (`GET /_emulator/faults`), the health-check pace of
//! `tests/emulator/strict_elbv2.py`, a load balancer in front of a target group
//! (ELB health-checks only groups a load balancer uses), and a loopback HTTP
//! server whose answer a test chooses, for targets whose health comes from the
//! target.

use crate::{Aws, Emulator};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerTypeEnum, ProtocolEnum,
};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

impl Emulator {
    /// Every fault added since the last clear, as the emulator describes it:
    /// `operation`, `region`, `kind`, `times_left` (or `share`), `fired`, `consumed`.
    pub fn faults(&self) -> Vec<Value> {
        self.control("GET", "faults", &json!({}))["faults"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The faults of `region` still waiting for calls (not consumed).
    pub fn pending_faults(&self, region: &str) -> Vec<Value> {
        self.faults()
            .into_iter()
            .filter(|f| f["region"] == region && f["consumed"] != true)
            .collect()
    }

    /// Adds one fault from a full spec (`kind`, `times`, `delay_seconds`, ...).
    pub fn add_fault(&self, spec: &Value) {
        self.control("POST", "faults", spec);
    }

    /// How long one health-check interval of a target group lasts, in wall
    /// seconds, for targets the emulator really checks (loopback addresses).
    /// Plain moto checks nothing: there it does nothing.
    pub fn set_health_check_seconds(&self, seconds: f64) {
        optional_control(
            &self.endpoint,
            "POST",
            "target-health",
            &json!({"check_seconds": seconds}),
        );
    }
}

/// One control request that may be refused (a control the plain emulator lacks).
fn optional_control(endpoint: &str, method: &str, path: &str, body: &Value) -> Option<Value> {
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let body = body.to_string();
    let mut stream = TcpStream::connect(address).ok()?;
    write!(
        stream,
        "{method} /_emulator/{path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, payload) = answer.split_once("\r\n\r\n")?;
    head.contains(" 200 ")
        .then(|| serde_json::from_str(payload).ok())
        .flatten()
}

impl Aws {
    /// Puts an Application Load Balancer with an HTTP listener forwarding to
    /// the group in front of it, in the group's VPC: ELB reports the targets of
    /// a group no load balancer uses `unused` (Target.NotInUse). Does nothing
    /// on the plain emulator (moto has no `unused`, nor the subnet lookup).
    pub async fn attach_to_load_balancer(&self, target_group_arn: &str, name: &str, vpc_id: &str) {
        let Some(answer) = optional_control(
            &self.endpoint,
            "GET",
            &format!("vpc-subnets?region={}&vpc_id={vpc_id}", self.region),
            &json!({}),
        ) else {
            return;
        };
        let subnets: Vec<String> = answer["subnets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        let balancer = self
            .elbv2
            .create_load_balancer()
            .name(name)
            .r#type(LoadBalancerTypeEnum::Application)
            .scheme(aws_sdk_elasticloadbalancingv2::types::LoadBalancerSchemeEnum::Internal)
            .set_subnets(Some(subnets))
            .send()
            .await
            .expect("create_load_balancer");
        let balancer_arn = balancer
            .load_balancers()
            .first()
            .and_then(|b| b.load_balancer_arn())
            .expect("load balancer arn")
            .to_string();
        self.elbv2
            .create_listener()
            .load_balancer_arn(balancer_arn)
            .protocol(ProtocolEnum::Http)
            .port(80)
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(target_group_arn)
                    .build(),
            )
            .send()
            .await
            .expect("create_listener");
    }
}

/// An HTTP server on a loopback address answering every request with the
/// status the test sets: a target whose health checks the test controls.
/// Stops when dropped.
#[derive(Debug)]
pub struct HealthServer {
    ip: Ipv4Addr,
    port: u16,
    status: Arc<AtomicU16>,
    requests: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HealthServer {
    /// Starts on `ip` (any 127.0.0.x) and a free port, answering `status`.
    pub fn start(ip: Ipv4Addr, status: u16) -> Self {
        assert!(ip.is_loopback(), "{ip} is not a loopback address");
        let listener = TcpListener::bind((ip, 0)).expect("a loopback port");
        let port = listener.local_addr().expect("bound").port();
        let status = Arc::new(AtomicU16::new(status));
        let requests = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (status, requests, paths, stop) = (
                Arc::clone(&status),
                Arc::clone(&requests),
                Arc::clone(&paths),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut head = Vec::new();
                    let mut byte = [0_u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                        match stream.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => break,
                        }
                    }
                    let text = String::from_utf8_lossy(&head);
                    if let Some(path) = text.split_whitespace().nth(1) {
                        paths.lock().expect("paths").push(path.to_string());
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    let code = status.load(Ordering::SeqCst);
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {code} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            })
        };
        Self {
            ip,
            port,
            status,
            requests,
            paths,
            stop,
            thread: Some(thread),
        }
    }

    pub fn ip(&self) -> String {
        self.ip.to_string()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The status every later request gets.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// How many requests the server answered.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The paths requested, oldest first.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().expect("paths").clone()
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the stop.
        let _ = TcpStream::connect((self.ip, self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
