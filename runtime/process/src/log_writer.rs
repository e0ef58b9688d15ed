//! The log writer: lines go to an in-memory buffer, and a thread of its
//! own writes the buffer to stderr every [`FLUSH_EVERY`] (or as soon as it
//! holds [`SOFT_LIMIT`] bytes), so a busy service makes one `write` per
//! batch instead of one per line, and no logging thread waits on a syscall
//! or wakes another thread per line.
//!
//! Nothing is dropped: past [`HARD_LIMIT`] (stderr slower than the logs)
//! the logging thread writes the buffer itself, so logging slows down
//! instead of losing lines or growing without bound. A line is written
//! whole (an event holds the buffer while it writes). The buffer is
//! written out when [`LogWriter::stop`] runs (the [`LogGuard`] drop) and
//! after a panic is logged; what a `SIGKILL` interrupts is at most the
//! last [`FLUSH_EVERY`] of lines.
//!
//! [`LogGuard`]: crate::logs::LogGuard

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// A buffer this large is written at once.
pub const SOFT_LIMIT: usize = 64 * 1024;
/// A buffer this large is written by the thread that logs.
pub const HARD_LIMIT: usize = 4 * 1024 * 1024;

struct Shared<W> {
    state: Mutex<State>,
    wake: Condvar,
    out: Mutex<W>,
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    stopping: bool,
}

/// A [`MakeWriter`] batching lines into `W` (stderr in the binaries).
pub struct LogWriter<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Locks that a panic elsewhere left poisoned still guard valid bytes.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<W: Write + Send + 'static> Shared<W> {
    /// Take the buffer out of `state` into `spare` and write it. The output
    /// is locked before the state is let go, so batches keep their order.
    /// Errors are ignored: there is nowhere left to report them.
    fn write_out(&self, mut state: MutexGuard<'_, State>, spare: &mut Vec<u8>) {
        spare.clear();
        std::mem::swap(&mut state.buf, spare);
        if spare.is_empty() {
            return;
        }
        let mut out = lock(&self.out);
        drop(state);
        let _ = out.write_all(spare);
        let _ = out.flush();
    }

    /// Take what is buffered and write it.
    fn drain(&self, spare: &mut Vec<u8>) {
        self.write_out(lock(&self.state), spare);
    }

    /// The writer thread: drain every `FLUSH_EVERY`, or when woken.
    fn run(&self) {
        let mut spare = Vec::with_capacity(SOFT_LIMIT);
        loop {
            let stopping = {
                let state = lock(&self.state);
                let (state, _) = self
                    .wake
                    .wait_timeout_while(state, FLUSH_EVERY, |s| {
                        s.buf.len() < SOFT_LIMIT && !s.stopping
                    })
                    .unwrap_or_else(PoisonError::into_inner);
                state.stopping
            };
            self.drain(&mut spare);
            if stopping {
                return;
            }
        }
    }
}

impl<W: Write + Send + 'static> LogWriter<W> {
    /// Batch lines into `out`, with a writer thread named `pym-log`
    /// (should the thread not start, each line is written at once).
    pub fn new(out: W) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            out: Mutex::new(out),
        });
        let runner = shared.clone();
        let thread = std::thread::Builder::new()
            .name("pym-log".into())
            .spawn(move || runner.run())
            .ok();
        lock(&shared.state).stopping = thread.is_none();
        LogWriter {
            shared,
            thread: Mutex::new(thread),
        }
    }

    /// Write what is buffered now, from this thread.
    pub fn flush_now(&self) {
        self.shared.drain(&mut Vec::new());
    }

    /// Write what is buffered and stop the writer thread; later lines are
    /// written at once by the thread that logs them.
    pub fn stop(&self) {
        lock(&self.shared.state).stopping = true;
        self.shared.wake.notify_one();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
        self.flush_now();
    }
}

/// One event's hold on the buffer: its writes land together.
pub struct Line<'a, W: Write + Send + 'static> {
    shared: &'a Shared<W>,
    state: Option<MutexGuard<'a, State>>,
}

impl<W: Write + Send + 'static> Write for Line<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if let Some(state) = &mut self.state {
            state.buf.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for Line<'_, W> {
    fn drop(&mut self) {
        let Some(state) = self.state.take() else {
            return;
        };
        let len = state.buf.len();
        if state.stopping || len >= HARD_LIMIT {
            self.shared.write_out(state, &mut Vec::new());
        } else if len >= SOFT_LIMIT {
            drop(state);
            self.shared.wake.notify_one();
        }
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for LogWriter<W> {
    type Writer = Line<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            shared: &self.shared,
            state: Some(lock(&self.shared.state)),
        }
    }
}

impl<'a, 'b: 'a, W: Write + Send + 'static> MakeWriter<'a> for &'b LogWriter<W> {
    type Writer = Line<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        (*self).make_writer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An output the test can read, counting the writes it gets.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>, Arc<std::sync::atomic::AtomicUsize>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(b);
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).clone()).unwrap()
        }
    }

    fn log(w: &LogWriter<Sink>, line: &str) {
        let mut l = w.make_writer();
        l.write_all(line.as_bytes()).unwrap();
        l.write_all(b"\n").unwrap();
    }

    #[test]
    fn lines_reach_the_output_within_the_interval_in_order() {
        let sink = Sink::default();
        let w = LogWriter::new(sink.clone());
        log(&w, "one");
        log(&w, "two");
        let start = Instant::now();
        while sink.text().is_empty() && start.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sink.text(), "one\ntwo\n");
        assert!(start.elapsed() < FLUSH_EVERY * 10, "{:?}", start.elapsed());
        w.stop();
    }

    #[test]
    fn stop_writes_everything_and_later_lines_go_straight_out() {
        let sink = Sink::default();
        let w = LogWriter::new(sink.clone());
        for i in 0..1000 {
            log(&w, &format!("line {i}"));
        }
        w.stop();
        let text = sink.text();
        assert_eq!(text.lines().count(), 1000);
        let writes = sink.1.load(std::sync::atomic::Ordering::Relaxed);
        assert!(writes < 100, "{writes} writes for 1000 lines: not batched");
        assert!(text.ends_with("line 999\n"));
        log(&w, "after");
        assert!(sink.text().ends_with("after\n"));
    }

    #[test]
    fn lines_of_concurrent_threads_are_never_mixed() {
        let sink = Sink::default();
        let w = Arc::new(LogWriter::new(sink.clone()));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let mut l = w.make_writer();
                        // One line in three writes, as a formatter may do.
                        write!(l, "{{\"t\":{t},").unwrap();
                        write!(l, "\"i\":{i}").unwrap();
                        l.write_all(b"}\n").unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        w.stop();
        let text = sink.text();
        assert_eq!(text.lines().count(), 8000);
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }

    #[test]
    fn a_full_buffer_is_written_by_the_logging_thread() {
        let sink = Sink::default();
        let w = LogWriter::new(sink.clone());
        let big = "x".repeat(HARD_LIMIT);
        log(&w, &big);
        assert_eq!(sink.text().len(), HARD_LIMIT + 1, "written at once");
        w.stop();
    }
}
