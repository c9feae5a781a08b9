//! The `/metrics` endpoint: one listener per configured address, shared by
//! every module instance configured with that address, process-wide.
//!
//! knotd loads the new module instances of a `knotc reload` before it
//! unloads the old ones, so the new instance attaches to the listener the
//! old one still holds, and the listener closes only when the last instance
//! detaches. The endpoint therefore never goes away or rebinds across a
//! reload. The thread only reads counters and never calls into knotd.

use crate::http::metrics;
use crate::stats::instance::{Instance, Snapshot};
use crate::stats::panics;
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the thread wakes without requests (decay timer, stop flag).
const TICK: Duration = Duration::from_millis(200);
/// How long `unload` waits for the thread before leaving it behind.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub(crate) enum EndpointError {
    #[error("cannot listen on {addr} for /metrics: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("cannot start the /metrics thread: {0}")]
    Thread(std::io::Error),
}

struct Shared {
    instances: Mutex<Vec<Arc<Instance>>>,
    stop: AtomicBool,
}

struct Endpoint {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Arc<tiny_http::Server>,
    thread: JoinHandle<()>,
}

static ENDPOINTS: Mutex<Vec<Endpoint>> = Mutex::new(Vec::new());

/// Serves `instance` on `addr`, starting the listener if no other instance
/// uses that address yet.
pub(crate) fn attach(addr: SocketAddr, instance: Arc<Instance>) -> Result<(), EndpointError> {
    let mut endpoints = ENDPOINTS.lock();
    if let Some(endpoint) = endpoints.iter().find(|e| e.addr == addr) {
        endpoint.shared.instances.lock().push(instance);
        return Ok(());
    }
    let server = tiny_http::Server::http(addr).map_err(|e| EndpointError::Bind {
        addr,
        reason: e.to_string(),
    })?;
    let server = Arc::new(server);
    let shared = Arc::new(Shared {
        instances: Mutex::new(vec![instance]),
        stop: AtomicBool::new(false),
    });
    let thread = std::thread::Builder::new()
        .name("querystats-http".into())
        .spawn({
            let server = Arc::clone(&server);
            let shared = Arc::clone(&shared);
            move || serve(&server, &shared)
        })
        .map_err(EndpointError::Thread)?;
    endpoints.push(Endpoint {
        addr,
        shared,
        server,
        thread,
    });
    Ok(())
}

/// Stops serving `instance`; the last instance on an address closes the
/// listener and joins its thread. Returns false when the thread did not
/// stop within the deadline (it is then left to finish on its own).
pub(crate) fn detach(addr: SocketAddr, instance: &Arc<Instance>) -> bool {
    let mut endpoints = ENDPOINTS.lock();
    let Some(pos) = endpoints.iter().position(|e| e.addr == addr) else {
        return true;
    };
    let now_empty = {
        let mut instances = endpoints[pos].shared.instances.lock();
        instances.retain(|i| !Arc::ptr_eq(i, instance));
        instances.is_empty()
    };
    if !now_empty {
        return true;
    }
    let endpoint = endpoints.swap_remove(pos);
    drop(endpoints);
    endpoint.shared.stop.store(true, Ordering::Release);
    endpoint.server.unblock();
    let deadline = Instant::now() + STOP_DEADLINE;
    while !endpoint.thread.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = endpoint.thread.join();
    // The last Arc of the server: dropping it closes the listening socket.
    drop(endpoint.server);
    true
}

fn serve(server: &tiny_http::Server, shared: &Shared) {
    while !shared.stop.load(Ordering::Acquire) {
        let request = server.recv_timeout(TICK);
        let now = Instant::now();
        let instances: Vec<Arc<Instance>> = shared.instances.lock().clone();
        for instance in &instances {
            instance.decay_if_due(now);
        }
        match request {
            Ok(Some(request)) => respond(request, &instances),
            Ok(None) => {}
            // The listener is gone or unblocked: stop is about to be set.
            Err(_) => std::thread::sleep(TICK),
        }
    }
}

fn respond(request: tiny_http::Request, instances: &[Arc<Instance>]) {
    let path = request.url().split('?').next().unwrap_or("").to_owned();
    let is_get = matches!(
        request.method(),
        tiny_http::Method::Get | tiny_http::Method::Head
    );
    let (status, content_type, body) = match (is_get, path.as_str()) {
        (true, "/metrics") => {
            let mut total = Snapshot::default();
            for instance in instances {
                total.add(instance.snapshot());
            }
            (
                200,
                metrics::CONTENT_TYPE,
                metrics::render(&total, instances.len(), panics::total()),
            )
        }
        (true, "/healthz") => (200, "text/plain; charset=utf-8", "ok\n".to_owned()),
        (false, "/metrics" | "/healthz") => (
            405,
            "text/plain; charset=utf-8",
            "method not allowed\n".to_owned(),
        ),
        _ => (404, "text/plain; charset=utf-8", "not found\n".to_owned()),
    };
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    if let Ok(header) = tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
    {
        response.add_header(header);
    }
    // A client that went away is not our problem.
    let _ = request.respond(response);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawSettings;
    use crate::stats::clock::Clock;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    }

    fn free_addr() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    #[test]
    fn listener_survives_overlapping_instances_and_closes_after_the_last() {
        let addr = free_addr();
        let settings = RawSettings::default().check().unwrap();
        let old = Arc::new(Instance::new(settings.clone(), 1, None, Clock::MONOTONIC).unwrap());
        let new = Arc::new(Instance::new(settings, 1, None, Clock::MONOTONIC).unwrap());
        attach(addr, Arc::clone(&old)).unwrap();
        assert!(get(addr, "/healthz").unwrap().ends_with("ok\n"));
        // Reload order: the new instance attaches before the old detaches.
        attach(addr, Arc::clone(&new)).unwrap();
        assert!(
            get(addr, "/metrics")
                .unwrap()
                .contains("knot_querystats_instances 2\n")
        );
        assert!(detach(addr, &old));
        let metrics = get(addr, "/metrics").unwrap();
        assert!(
            metrics.contains("knot_querystats_instances 1\n"),
            "{metrics}"
        );
        assert!(get(addr, "/nope").unwrap().starts_with("HTTP/1.0 404"));
        assert!(detach(addr, &new));
        assert!(get(addr, "/healthz").is_err(), "listener closed");
    }

    #[test]
    fn a_taken_port_is_a_bind_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let settings = RawSettings::default().check().unwrap();
        let inst = Arc::new(Instance::new(settings, 1, None, Clock::MONOTONIC).unwrap());
        assert!(matches!(
            attach(addr, inst),
            Err(EndpointError::Bind { .. })
        ));
    }
}
