//! Captures what a function logs, formatted as in Lambda (JSON lines at `info`, the level the
//! template sets with `RUST_LOG=info`), so tests can prove no token or secret reaches the logs.
//!
//! One global subscriber is installed for the whole test binary, and each event is written to
//! the capture active on the thread that emits it. A per-test `set_default` subscriber would be
//! simpler, but `tracing` caches each call site's interest globally: a call site first reached
//! by a parallel test on a thread without a subscriber can stay disabled for everyone, and the
//! capture comes back empty now and then.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

use tracing_subscriber::fmt::MakeWriter;

type Buffer = Arc<Mutex<Vec<u8>>>;

thread_local! {
    static ACTIVE: RefCell<Option<Buffer>> = const { RefCell::new(None) };
}

/// While alive, every `tracing` event emitted on this thread is captured (the tests'
/// current-thread runtime keeps the handler on it).
pub struct LogCapture {
    lines: Buffer,
}

impl LogCapture {
    pub fn start() -> LogCapture {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_max_level(tracing::Level::INFO)
                .with_writer(ThreadCapture)
                .finish();
            // Nothing else in a test binary installs one; if something did, its events would
            // simply not be captured and the test's own assertions say so.
            let _ = tracing::subscriber::set_global_default(subscriber);
        });
        let lines = Buffer::default();
        ACTIVE.with(|a| *a.borrow_mut() = Some(lines.clone()));
        LogCapture { lines }
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lines.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        ACTIVE.with(|a| {
            let mut active = a.borrow_mut();
            if active.as_ref().is_some_and(|b| Arc::ptr_eq(b, &self.lines)) {
                *active = None;
            }
        });
    }
}

/// Writes to the capture of the emitting thread, or nowhere.
struct ThreadCapture;

impl Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        ACTIVE.with(|a| {
            if let Some(lines) = a.borrow().as_ref() {
                lines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ThreadCapture {
    type Writer = ThreadCapture;
    fn make_writer(&'a self) -> Self::Writer {
        ThreadCapture
    }
}
