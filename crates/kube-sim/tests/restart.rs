//! An API server restart as clients see it: every connection of the old server is closed (idle keep-alive ones,
//! ones in the middle of a request, ones whose request outlived the drain), so a client learns of the restart
//! once and its next request, on a new connection, is answered.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube_sim::{Options, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; `None` if it stays open for `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// Sends one whole keep-alive request and reads its whole answer, leaving the connection idle.
async fn idle_keep_alive_connection(sim: &Simulator) -> TcpStream {
    let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
    stream
        .write_all(b"GET /version HTTP/1.1\r\nHost: kube-sim\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") || !answer.ends_with(b"}") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering /version");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_closes_every_connection_of_the_old_server() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let mut idle = idle_keep_alive_connection(&sim).await;
    // A request whose head never ends: the server is waiting for the rest of it.
    let mut half_sent = TcpStream::connect(sim.addr()).await.unwrap();
    half_sent
        .write_all(b"GET /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: kube-sim\r\nAccept: application/json\r\n")
        .await
        .unwrap();
    sim.restart(Duration::from_millis(50), false).await.unwrap();
    // Whatever was still open is closed by the time `restart` returns: the reads end at once.
    let limit = Duration::from_millis(500);
    assert!(
        closed_within(&mut idle, limit).await.is_some(),
        "an idle keep-alive connection of the old server is still open after the restart"
    );
    assert!(
        closed_within(&mut half_sent, limit).await.is_some(),
        "a connection in the middle of a request is still open after the restart"
    );
    // The new server answers on a new connection.
    idle_keep_alive_connection(&sim).await;
}

/// A request the old server was still working on when its drain deadline passed gets no answer from it: its
/// connection is closed, as a real API server going away closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_outliving_the_drain_gets_its_connection_closed() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "default");
    sim.set_latency(Duration::from_secs(4));
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        (api.list(&ListParams::default()).await, started.elapsed())
    });
    // The request is in the handler (sleeping its latency) before the restart begins.
    tokio::time::timeout(Duration::from_secs(2), async {
        while sim.metrics().requests_in_flight() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the list never reached the simulator");
    let restart = Instant::now();
    sim.restart(Duration::from_millis(50), false).await.unwrap();
    let restart_took = restart.elapsed();
    sim.set_latency(Duration::ZERO);
    let (result, took) = slow.await.unwrap();
    assert!(
        result.is_err(),
        "the stopped server answered a request after its restart ({took:?})"
    );
    assert!(
        took < Duration::from_secs(4),
        "the request waited {took:?}, its full latency, instead of seeing its connection close"
    );
    assert!(
        restart_took < Duration::from_secs(3),
        "the restart took {restart_took:?}"
    );
}

/// The suspected cause of the fault-schedule finding (docs/reliability.md): a client whose pooled connection
/// belonged to the old server. Its first request after each restart must be answered, not fail on that
/// connection (hyper's `IncompleteMessage` / connection reset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_client_is_answered_on_its_first_request_after_a_restart() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "default");
    let params = ListParams::default();
    for round in 0..10 {
        // Several connections in the pool, all idle when the restart begins.
        let lists = futures::future::join_all((0..4).map(|_| api.list(&params))).await;
        assert!(lists.iter().all(Result::is_ok), "round {round}: {lists:?}");
        sim.restart(Duration::from_millis(20), round % 2 == 0)
            .await
            .unwrap();
        let after = futures::future::join_all((0..4).map(|_| api.list(&params))).await;
        for result in after {
            if let Err(e) = result {
                panic!("round {round}: the first list after the restart failed: {e}");
            }
        }
    }
}
