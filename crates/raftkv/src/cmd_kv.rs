//! `raftkv put`, `get`, `delete` and `scan`: one request each, printed with escaping.

use crate::client_args::{CfArg, ClientArgs};
use crate::escape::{escape, escape_into};
use crate::exit::Exit;
use crate::output;

pub async fn put(
    args: &ClientArgs,
    cf: &CfArg,
    key: String,
    value: String,
) -> anyhow::Result<Exit> {
    args.client()?.put(key.into_bytes(), value.into_bytes(), cf.name()).await?;
    Ok(Exit::Success)
}

/// Prints the value; a missing key prints nothing on stdout, a note on stderr, exit 1.
pub async fn get(args: &ClientArgs, cf: &CfArg, key: String) -> anyhow::Result<Exit> {
    match args.client()?.get(key.clone().into_bytes(), cf.name()).await? {
        Some(value) => {
            output::stdout(|out| writeln!(out, "{}", escape(&value)))?;
            Ok(Exit::Success)
        }
        None => {
            eprintln!("key not found: {}", escape(key.as_bytes()));
            Ok(Exit::NotFound)
        }
    }
}

pub async fn delete(args: &ClientArgs, cf: &CfArg, key: String) -> anyhow::Result<Exit> {
    args.client()?.delete(key.into_bytes(), cf.name()).await?;
    Ok(Exit::Success)
}

/// Prints at most `limit` pairs from `start` on, one `key<TAB>value` line each.
pub async fn scan(
    args: &ClientArgs,
    cf: &CfArg,
    start: Option<String>,
    limit: u32,
) -> anyhow::Result<Exit> {
    let start = start.unwrap_or_default().into_bytes();
    let pairs = args.client()?.scan(start, limit, cf.name()).await?;
    output::stdout(|out| {
        let mut line = String::new();
        for (key, value) in &pairs {
            line.clear();
            escape_into(&mut line, key);
            line.push('\t');
            escape_into(&mut line, value);
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
        Ok(())
    })?;
    Ok(Exit::Success)
}
