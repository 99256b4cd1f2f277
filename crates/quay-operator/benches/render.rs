//! How long one render of the all-managed OpenShift registry takes (Routes, bound ObjectBucketClaim, monitoring):
//! the controller renders on every reconcile, so this is its steady-state CPU cost per registry.
//!
//! `cargo bench -p quay-operator --bench render -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use quay_operator::cli::{InputArgs, Inputs};
use quay_operator::render::render;

fn all_managed() -> Inputs {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/all-managed");
    let args = InputArgs {
        registry: dir.join("quayregistry.yaml"),
        cluster: Some(dir.join("cluster.yaml")),
        managed_keys: Some(dir.join("managed-keys.yaml")),
    };
    Inputs::load(&args, Some(&dir.join("config-bundle.yaml")), |_| None)
        .expect("the all-managed example loads")
}

fn bench_render(c: &mut Criterion) {
    let inputs = all_managed();
    let now = SystemTime::now();
    let objects = render(&inputs.render_input(now))
        .expect("the all-managed example renders")
        .objects
        .len();
    c.bench_function(
        &format!("render all-managed OpenShift registry ({objects} objects)"),
        |b| b.iter(|| render(black_box(&inputs.render_input(now))).expect("renders")),
    );
}

criterion_group!(benches, bench_render);
criterion_main!(benches);
