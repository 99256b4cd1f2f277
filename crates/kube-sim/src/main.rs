//! `kube-sim` binary: serve the simulator on an address and write a kubeconfig for kubectl.

use clap::Parser;
use kube_sim::{Options, Simulator};
use std::io::Write;

#[derive(Parser, Debug)]
#[command(
    name = "kube-sim",
    about = "Kubernetes API server simulator for tests (plain HTTP)"
)]
struct Args {
    /// Address to listen on (port 0 = pick a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Write a kubeconfig for this server here.
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Serve OpenShift APIs (Route, config.openshift.io APIServer) plus OBC and monitoring CRDs.
    #[arg(long)]
    openshift: bool,
    /// Install the ObjectBucketClaim CRDs (implied by --openshift).
    #[arg(long)]
    obc: bool,
    /// Install the ServiceMonitor/PrometheusRule CRDs (implied by --openshift).
    #[arg(long)]
    monitoring: bool,
    /// Delay of the simulated controllers, in milliseconds.
    #[arg(long, default_value_t = 20)]
    controller_delay_ms: u64,
    /// Create ReplicaSets and Pods for Deployments.
    #[arg(long)]
    deployment_pods: bool,
    /// Watch events kept for resuming watches (older resourceVersions get 410 Expired).
    #[arg(long, default_value_t = 10_000)]
    history_limit: usize,
    /// Seconds between BOOKMARK events on watches that allow them.
    #[arg(long, default_value_t = 30)]
    bookmark_interval_secs: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut opts = Options {
        listen: args.listen,
        ..Default::default()
    };
    opts.openshift = args.openshift;
    opts.object_bucket_claims = args.openshift || args.obc;
    opts.monitoring = args.openshift || args.monitoring;
    opts.controllers.delay = std::time::Duration::from_millis(args.controller_delay_ms);
    opts.controllers.deployment_pods = args.deployment_pods;
    opts.history_limit = args.history_limit;
    opts.bookmark_interval = std::time::Duration::from_secs(args.bookmark_interval_secs.max(1));
    let sim = Simulator::start(opts).await?;
    if let Some(p) = &args.kubeconfig {
        sim.write_kubeconfig(p)?;
    }
    // Tests wait for this line instead of sleeping.
    println!("kube-sim ready on {}", sim.url());
    std::io::stdout().flush()?;
    // Serve until SIGINT or SIGTERM (or SIGKILL, which needs no handling).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    sim.stop().await;
    Ok(())
}
