//! The operator's log lines in a test process, captured in memory so a test can search them (for secrets).

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Every log line of this test process (JSON, every level down to `max_level`), from the first call on. The
/// subscriber is global: the first caller's level holds for the whole process.
pub fn captured(max_level: tracing::Level) -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .json()
            .with_max_level(max_level)
            .with_writer(move || LogSink(sink.clone()))
            .init();
        buffer
    })
    .clone()
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
