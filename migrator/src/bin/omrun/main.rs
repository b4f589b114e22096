//! omrun: run a command as a cluster job (mosrun's successor). This process stays on the home
//! node as the job's deputy: it feeds the job's stdin, prints its output, forwards signals, and
//! exits with its status, wherever the job runs.

use std::collections::VecDeque;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_bytes::ByteBuf;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use migrator::api::{DEFAULT_SOCKET, Reply, Request};
use migrator::frame;
use migrator::job::stdio::{CHUNK, FORWARDED, Io, Stream, fresh_part};
use migrator::jobs::home::{RunRequest, ToDeputy};

/// Run a command as a cluster job; this process stays as its deputy (like mosrun).
#[derive(Debug, Parser)]
#[command(
    name = "omrun",
    version,
    trailing_var_arg = true,
    disable_help_flag = true
)]
struct Cli {
    /// Keep the job on this (home) node for good (mosrun -h).
    #[arg(short = 'h', long = "home", conflicts_with_all = ["node", "best"])]
    home: bool,
    /// Start the job on this node.
    #[arg(long, value_name = "NAME", conflicts_with = "best")]
    node: Option<String>,
    /// Start the job on the least-loaded node.
    #[arg(long)]
    best: bool,
    /// Say where the job starts and moves, on stderr.
    #[arg(short, long)]
    verbose: bool,
    /// omd's control socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// The command and its arguments.
    #[arg(required = true, value_name = "CMD")]
    command: Vec<String>,
    /// Print help.
    #[arg(long = "help", action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// Stdin bytes sent but not yet in the job's pipe, kept to send again after a move.
const STDIN_WINDOW: usize = 1 << 20;

fn env_strings() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            String::from_utf8(kv).ok()
        })
        .collect()
}

async fn run(cli: Cli) -> Result<i32> {
    let stream = UnixStream::connect(&cli.socket).await.with_context(|| {
        format!(
            "cannot reach omd at {} (is omd running?)",
            cli.socket.display()
        )
    })?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let req = Request::Run(RunRequest {
        argv: cli.command.clone(),
        env: env_strings(),
        cwd: cwd.to_string_lossy().into_owned(),
        home_only: cli.home,
        node: cli.node.clone(),
        best: cli.best,
    });
    let mut line = serde_json::to_string(&req)?;
    line.push('\n');
    w.write_all(line.as_bytes()).await?;
    let mut reply = String::new();
    r.read_line(&mut reply).await?;
    match serde_json::from_str::<Reply>(&reply) {
        Ok(Reply::Started { job, node }) => {
            if cli.verbose {
                eprintln!("omrun: job {job} started on {node}");
            }
        }
        Ok(Reply::Error { error }) => bail!("{error}"),
        _ => bail!("omd gave an unexpected answer: {}", reply.trim()),
    }

    // Stdin in a thread of its own (a blocking read), chunk by chunk.
    let (in_tx, mut in_rx) = mpsc::channel::<Option<Vec<u8>>>(4);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; CHUNK];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = in_tx.blocking_send(None);
                    return;
                }
                Ok(n) => {
                    if in_tx.blocking_send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let (sig_tx, mut sig_rx) = mpsc::channel::<i32>(16);
    for &s in FORWARDED {
        let mut st = signal(SignalKind::from_raw(s)).context("installing signal handlers")?;
        let tx = sig_tx.clone();
        tokio::spawn(async move {
            while st.recv().await.is_some() {
                if tx.send(s).await.is_err() {
                    return;
                }
            }
        });
    }
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let (mut out_n, mut err_n) = (0u64, 0u64);
    let mut kept: VecDeque<u8> = VecDeque::new();
    let mut kept_base = 0u64;
    let mut stdin_eof = false;
    let mut exit: Option<(i32, u64, u64)> = None;
    loop {
        if let Some((status, o, e)) = exit
            && out_n >= o
            && err_n >= e
        {
            stdout.flush().await?;
            frame::io::write(
                &mut w,
                &Io::Ack {
                    out: out_n,
                    err: err_n,
                },
            )
            .await?;
            return Ok(status);
        }
        tokio::select! {
            m = frame::io::read::<ToDeputy, _>(&mut r) => {
                let Some(m) = m.context("reading from omd")? else {
                    bail!("omd closed the connection: the job's fate is unknown");
                };
                match m {
                    ToDeputy::Io(Io::Output { stream, offset, data }) => {
                        let have = match stream { Stream::Out => out_n, Stream::Err => err_n };
                        if let Some(fresh) = fresh_part(have, offset, &data) {
                            match stream {
                                Stream::Out => { stdout.write_all(fresh).await?; stdout.flush().await?; out_n += fresh.len() as u64; }
                                Stream::Err => { stderr.write_all(fresh).await?; err_n += fresh.len() as u64; }
                            }
                            frame::io::write(&mut w, &Io::Ack { out: out_n, err: err_n }).await?;
                        }
                    }
                    ToDeputy::Io(Io::StdinAck { written }) => {
                        let n = written.saturating_sub(kept_base).min(kept.len() as u64) as usize;
                        kept.drain(..n);
                        kept_base += n as u64;
                    }
                    ToDeputy::Io(Io::Exited { status, out, err }) => exit = Some((status, out, err)),
                    ToDeputy::Io(_) => {}
                    ToDeputy::Where { node } => {
                        if cli.verbose {
                            eprintln!("omrun: job runs on {node}");
                        }
                        // A new place: send again what it may not have.
                        let all: Vec<u8> = kept.iter().copied().collect();
                        for (i, c) in all.chunks(CHUNK).enumerate() {
                            let offset = kept_base + (i * CHUNK) as u64;
                            frame::io::write(&mut w, &Io::Stdin { offset, data: ByteBuf::from(c.to_vec()) }).await?;
                        }
                        if stdin_eof {
                            frame::io::write(&mut w, &Io::StdinEof { offset: kept_base + kept.len() as u64 }).await?;
                        }
                        frame::io::write(&mut w, &Io::Ack { out: out_n, err: err_n }).await?;
                    }
                }
            }
            c = in_rx.recv(), if !stdin_eof && kept.len() < STDIN_WINDOW => {
                match c.flatten() {
                    Some(data) => {
                        let offset = kept_base + kept.len() as u64;
                        kept.extend(&data);
                        frame::io::write(&mut w, &Io::Stdin { offset, data: ByteBuf::from(data) }).await?;
                    }
                    None => {
                        stdin_eof = true;
                        frame::io::write(&mut w, &Io::StdinEof { offset: kept_base + kept.len() as u64 }).await?;
                    }
                }
            }
            Some(sig) = sig_rx.recv() => {
                frame::io::write(&mut w, &Io::Signal { sig }).await?;
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("omrun: cannot start: {e}");
            return std::process::ExitCode::from(255);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(status) => std::process::ExitCode::from(status.clamp(0, 255) as u8),
        Err(e) => {
            migrator::report::print_error_chain("omrun", &e);
            std::process::ExitCode::from(255)
        }
    }
}
