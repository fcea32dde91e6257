//! Writing results to stdout. A reader that goes away (`raftkv scan | head`) ends the
//! output quietly instead of failing the command.

use std::io::{self, Write};

/// Runs `write` against a buffered stdout and flushes; a closed pipe is not an error.
pub fn stdout(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
        Ok(()) => Ok(()),
    }
}
