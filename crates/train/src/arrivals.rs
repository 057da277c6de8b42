//! Which ranks have not arrived: MPI cannot say who is missing from a collective that never
//! completes, so every rank reports each collective it enters to a small board on rank 0, over
//! TCP beside MPI (as PyTorch's process groups report to their TCPStore for desync debugging).
//! Each rank also beats every tenth of the timeout (at most every second) from a thread of its
//! own, so a rank stopped inside a collective it had entered (a frozen process, a host gone) is
//! told from one that waits like the others. When the watchdog gives up, rank 0 reads the board;
//! another rank asks rank 0 for it. The board never holds training back: reports are queued to a thread, and a board that cannot be
//! reached only costs the names in the message.

use crate::process_group::ProcessGroup;
use anyhow::Result;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a rank tries one of rank 0's addresses, and waits for the board's answer.
const PATIENCE: Duration = Duration::from_secs(2);
/// Rank 0's addresses sent to the others: at most this many.
const MAX_ADDRS: usize = 8;

/// What the board knows of one rank.
#[derive(Clone, Default)]
struct Seen {
    host: String,
    pid: u64,
    /// How many collectives it has entered, the last one and when.
    seq: u64,
    what: String,
    step: u64,
    at: Option<Instant>,
    /// When the board last heard from it (a report or a beat).
    heard: Option<Instant>,
    /// Its connection ended (the process died or its host went away).
    gone: Option<Instant>,
}

type Board = Arc<Vec<Mutex<Seen>>>;

enum Role {
    Lead(Board),
    Member {
        reports: Mutex<Sender<String>>,
        answers: Mutex<BufReader<TcpStream>>,
    },
}

struct State {
    rank: usize,
    beat: Duration,
    seq: AtomicU64,
    role: Role,
}

static STATE: OnceLock<State> = OnceLock::new();

/// Sets up the board (rank 0) or the connection to it (the others); call on every rank at the
/// same point, like a collective. A board that cannot be set up is reported, not fatal.
/// `timeout` is the collective timeout: beats come ten times within it.
pub fn start(group: &dyn ProcessGroup, timeout: Duration) -> Result<()> {
    let (rank, world) = (group.rank(), group.world_size());
    let beat = (timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let listener = if rank == 0 {
        TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()
    } else {
        None
    };
    // Rank 0's port, a token naming this job, and its IPv4 addresses, through one all-gather.
    let mut mine = vec![0u64; 2 + MAX_ADDRS];
    if let Some(l) = &listener {
        mine[0] = l.local_addr().map(|a| a.port() as u64).unwrap_or(0);
        mine[1] = token();
        for (slot, a) in mine[2..].iter_mut().zip(addresses()) {
            *slot = u32::from(a) as u64;
        }
    }
    let all = group.all_gather_u64(&mine)?;
    let lead = &all[..mine.len()];
    let (port, token) = (lead[0] as u16, lead[1]);
    let role = if let Some(l) = listener {
        let board: Board = Arc::new((0..world).map(|_| Mutex::default()).collect());
        if let Ok(mut me) = board[0].lock() {
            me.host = crate::process_group::host_name();
            me.pid = std::process::id() as u64;
        }
        let b = board.clone();
        std::thread::Builder::new()
            .name("arrivals-board".into())
            .spawn(move || serve(l, b, token, beat))?;
        Role::Lead(board)
    } else if port == 0 {
        return Ok(());
    } else {
        let addrs: Vec<Ipv4Addr> = lead[2..]
            .iter()
            .filter(|&&a| a != 0)
            .map(|&a| Ipv4Addr::from(a as u32))
            .collect();
        match join(&addrs, port, token, rank) {
            Some(stream) => {
                let (tx, rx) = channel::<String>();
                let mut out = stream.try_clone()?;
                std::thread::Builder::new()
                    .name("arrivals-report".into())
                    .spawn(move || loop {
                        let line = match rx.recv_timeout(beat) {
                            Ok(line) => line,
                            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => "beat\n".into(),
                            Err(_) => return,
                        };
                        if out.write_all(line.as_bytes()).is_err() {
                            return;
                        }
                    })?;
                Role::Member {
                    reports: Mutex::new(tx),
                    answers: Mutex::new(BufReader::new(stream)),
                }
            }
            None => {
                eprintln!(
                    "rank {rank}: warning: cannot reach rank 0's watchdog board at {addrs:?} port \
                     {port}; a timeout will not be able to name the ranks that did not arrive"
                );
                return Ok(());
            }
        }
    };
    let _ = STATE.set(State {
        rank,
        beat,
        seq: AtomicU64::new(0),
        role,
    });
    Ok(())
}

/// This rank enters collective `what` at `step`.
pub fn arrive(what: &str, step: u64) {
    let Some(s) = STATE.get() else { return };
    let seq = s.seq.fetch_add(1, Ordering::Relaxed) + 1;
    match &s.role {
        Role::Lead(board) => {
            if let Ok(mut me) = board[0].lock() {
                me.seq = seq;
                me.what = what.to_string();
                me.step = step;
                me.at = Some(Instant::now());
            }
        }
        Role::Member { reports, .. } => {
            if let Ok(tx) = reports.lock() {
                let _ = tx.send(format!("at {seq} {step} {what}\n"));
            }
        }
    }
}

/// The ranks that have not reached this rank's latest collective, for the watchdog's message.
pub fn missing() -> String {
    let Some(s) = STATE.get() else {
        return "(the watchdog board was not set up, so the ranks cannot be named)".into();
    };
    let seq = s.seq.load(Ordering::Relaxed);
    match &s.role {
        Role::Lead(board) => behind(board, seq, s.rank, s.beat),
        Role::Member { reports, answers } => {
            if let Ok(tx) = reports.lock() {
                let _ = tx.send(format!("? {seq} {}\n", s.rank));
            }
            let mut line = String::new();
            let answered = answers.lock().ok().is_some_and(|mut r| {
                r.get_ref().set_read_timeout(Some(PATIENCE)).is_ok()
                    && r.read_line(&mut line).is_ok_and(|n| n > 0)
            });
            if answered {
                line.trim_end().to_string()
            } else {
                format!(
                    "rank 0 did not answer within {} s: rank 0 itself has stopped or cannot be \
                     reached",
                    PATIENCE.as_secs()
                )
            }
        }
    }
}

/// The ranks of `board` that have not reached collective number `seq`, or that have been silent
/// for three beats, in words (`asker` is left out).
fn behind(board: &Board, seq: u64, asker: usize, beat: Duration) -> String {
    let mut late = Vec::new();
    for (r, slot) in board.iter().enumerate() {
        let Ok(seen) = slot.lock().map(|s| s.clone()) else {
            continue;
        };
        // Rank 0 keeps its own entry and is alive when it reads the board.
        let silent = (r != 0)
            .then(|| seen.heard.map_or(Duration::MAX, |h| h.elapsed()))
            .filter(|&d| d > 3 * beat);
        if r == asker || (seen.seq >= seq && silent.is_none()) {
            continue;
        }
        let mut about = format!("rank {r}");
        if !seen.host.is_empty() {
            about += &format!(" (host {}, pid {})", seen.host, seen.pid);
        }
        match silent {
            Some(Duration::MAX) => about += ": never heard from",
            Some(d) => about += &format!(": silent for {:.1} s", d.as_secs_f64()),
            None => about += ": alive",
        }
        match seen.at {
            Some(at) => {
                about += &format!(
                    ", last entered {} at step {}, {:.1} s ago",
                    seen.what,
                    seen.step,
                    at.elapsed().as_secs_f64()
                )
            }
            None => about += ", has entered no collective yet",
        }
        if let Some(g) = seen.gone {
            about += &format!(
                "; its connection closed {:.1} s ago",
                g.elapsed().as_secs_f64()
            );
        }
        late.push(about);
    }
    if late.is_empty() {
        "every rank has reached this collective and is alive; the network between them may be \
         cut"
        .into()
    } else {
        format!("not arrived: {}", late.join("; "))
    }
}

/// Rank 0: takes each rank's connection and reads its reports.
fn serve(listener: TcpListener, board: Board, token: u64, beat: Duration) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let board = board.clone();
        std::thread::spawn(move || {
            let _ = read_reports(conn, &board, token, beat);
        });
    }
}

fn read_reports(conn: TcpStream, board: &Board, token: u64, beat: Duration) -> Result<()> {
    let mut out = conn.try_clone()?;
    conn.set_read_timeout(Some(PATIENCE))?;
    let mut lines = BufReader::new(conn);
    let mut hello = String::new();
    lines.read_line(&mut hello)?;
    // `hello TOKEN RANK PID HOST`: anything else is not one of this job's ranks.
    let f: Vec<&str> = hello.split_whitespace().collect();
    let rank = match f.as_slice() {
        ["hello", t, r, _, _] if t.parse::<u64>().ok() == Some(token) => r.parse::<usize>()?,
        _ => return Ok(()),
    };
    let Some(slot) = board.get(rank) else {
        return Ok(());
    };
    if let Ok(mut s) = slot.lock() {
        s.pid = f[3].parse().unwrap_or(0);
        s.host = f[4].to_string();
        s.heard = Some(Instant::now());
    }
    out.write_all(b"ok\n")?;
    lines.get_ref().set_read_timeout(None)?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line)? == 0 {
            break;
        }
        if let Ok(mut s) = slot.lock() {
            s.heard = Some(Instant::now());
        }
        let mut parts = line.trim_end().splitn(4, ' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("at"), Some(seq), Some(step), Some(what)) => {
                if let Ok(mut s) = slot.lock() {
                    s.seq = seq.parse().unwrap_or(s.seq);
                    s.step = step.parse().unwrap_or(s.step);
                    s.what = what.to_string();
                    s.at = Some(Instant::now());
                }
            }
            (Some("?"), Some(seq), _, _) => {
                let answer = behind(board, seq.parse().unwrap_or(0), rank, beat);
                out.write_all(format!("{answer}\n").as_bytes())?;
            }
            _ => {}
        }
    }
    if let Ok(mut s) = slot.lock() {
        s.gone = Some(Instant::now());
    }
    Ok(())
}

/// A member: the first of rank 0's addresses that answers the handshake.
fn join(addrs: &[Ipv4Addr], port: u16, token: u64, rank: usize) -> Option<TcpStream> {
    let hello = format!(
        "hello {token} {rank} {} {}\n",
        std::process::id(),
        crate::process_group::host_name().replace(char::is_whitespace, "_")
    );
    addrs.iter().find_map(|&a| {
        let s = TcpStream::connect_timeout(&SocketAddr::from((a, port)), PATIENCE).ok()?;
        s.set_nodelay(true).ok()?;
        s.set_read_timeout(Some(PATIENCE)).ok()?;
        (&s).write_all(hello.as_bytes()).ok()?;
        let mut ok = String::new();
        BufReader::new(&s).read_line(&mut ok).ok()?;
        (ok == "ok\n").then_some(s)
    })
}

/// A number that tells this job's ranks from any other program on rank 0's port.
fn token() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ ((std::process::id() as u64) << 32) | 1
}

/// This machine's IPv4 addresses, those of the network first and loopback last (ranks on
/// rank 0's host reach it there too).
fn addresses() -> Vec<Ipv4Addr> {
    let mut found = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list that freeifaddrs releases; each entry's
    // address is read only when its family says it is an IPv4 sockaddr_in.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return vec![Ipv4Addr::LOCALHOST];
        }
        let mut p = head;
        while !p.is_null() {
            let ifa = &*p;
            let up = ifa.ifa_flags & libc::IFF_UP as u32 != 0;
            if up && !ifa.ifa_addr.is_null() && (*ifa.ifa_addr).sa_family as i32 == libc::AF_INET {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                found.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
            p = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    found.sort_by_key(|a| a.is_loopback());
    found.dedup();
    if !found.iter().any(|a| a.is_loopback()) {
        found.push(Ipv4Addr::LOCALHOST);
    }
    found.truncate(MAX_ADDRS);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_comes_last() {
        let a = addresses();
        assert!(!a.is_empty() && a.len() <= MAX_ADDRS);
        assert!(a.last().unwrap().is_loopback(), "{a:?}");
    }

    #[test]
    fn the_board_names_the_ranks_behind() {
        let board: Board = Arc::new((0..3).map(|_| Mutex::default()).collect());
        for (r, seq) in [(0, 7), (1, 7), (2, 6)] {
            let mut s = board[r].lock().unwrap();
            s.seq = seq;
            s.host = format!("h{r}");
            s.pid = 100 + r as u64;
            s.what = "all-reduce of the gradients".into();
            s.step = 3;
            s.at = Some(Instant::now());
            s.heard = Some(Instant::now());
        }
        let beat = Duration::from_millis(100);
        let m = behind(&board, 7, 0, beat);
        assert!(
            m.starts_with("not arrived: rank 2 (host h2, pid 102): alive, last entered all-reduce"),
            "{m}"
        );
        assert!(!m.contains("rank 1"), "{m}");
        assert!(behind(&board, 6, 0, beat).starts_with("every rank has reached"));
        // Rank 1 stopped inside the collective it entered: silent, so named.
        board[1].lock().unwrap().heard = Some(Instant::now() - Duration::from_secs(2));
        let m = behind(&board, 6, 0, beat);
        assert!(
            m.starts_with("not arrived: rank 1 (host h1, pid 101): silent for 2.0 s"),
            "{m}"
        );
    }
}
