//! How long one render of the all-managed OpenShift registry takes (Routes, bound ObjectBucketClaim, monitoring):
//! the controller renders on every reconcile, so this is its steady-state CPU cost per registry.
//!
//! `cargo bench -p quay-operator --bench render -- --warm-up-time 1 --measurement-time 3`
//!
//! Two figures: wall time (what criterion measures by default) and the CPU time of the benchmark thread, which
//! stays meaningful when other builds share the machine's cores. A third benchmark measures what a reconcile does
//! with each rendered object before deciding whether to apply it: its JSON and its applied-hash annotation.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, SystemTime};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, criterion_group, criterion_main};
use quay_operator::cli::{InputArgs, Inputs};
use quay_operator::controller::diff::stamp_hash;
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

fn bench_name(inputs: &Inputs, now: SystemTime) -> String {
    let objects = render(&inputs.render_input(now))
        .expect("the all-managed example renders")
        .objects
        .len();
    format!("render all-managed OpenShift registry ({objects} objects)")
}

fn wall_time(c: &mut Criterion) {
    let inputs = all_managed();
    let now = SystemTime::now();
    c.bench_function(&bench_name(&inputs, now), |b| {
        b.iter(|| render(black_box(&inputs.render_input(now))).expect("renders"))
    });
}

fn cpu_time(c: &mut Criterion<ThreadCpuTime>) {
    let inputs = all_managed();
    let now = SystemTime::now();
    let name = format!("{} [thread CPU time]", bench_name(&inputs, now));
    c.bench_function(&name, |b| {
        b.iter(|| render(black_box(&inputs.render_input(now))).expect("renders"))
    });
}

fn stamp_cpu_time(c: &mut Criterion<ThreadCpuTime>) {
    let inputs = all_managed();
    let rendered = render(&inputs.render_input(SystemTime::now())).expect("renders");
    let name = format!(
        "JSON and applied-hash of the {} objects [thread CPU time]",
        rendered.objects.len()
    );
    c.bench_function(&name, |b| {
        b.iter(|| {
            for object in black_box(&rendered.objects) {
                let mut desired = object.to_json();
                black_box(stamp_hash(&mut desired));
            }
        })
    });
}

/// CPU time consumed by the measuring thread (`CLOCK_THREAD_CPUTIME_ID`).
struct ThreadCpuTime;

fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_time()
    }
    fn end(&self, start: Duration) -> Duration {
        thread_cpu_time().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, like wall time.
        WallTime.formatter()
    }
}

criterion_group!(wall, wall_time);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu_time, stamp_cpu_time
}
criterion_main!(wall, cpu);
