//! Which processes a herd phase charges CPU to, and how much they used: the processes are
//! found by the loopback port they listen on (`/proc/net/tcp*` gives the socket's inode, a
//! process's `/proc/<pid>/fd` links name it), so another checkout's nginx or waiting room on
//! the same machine is never counted. The load generators are this process's children (wrk,
//! redis-benchmark: their CPU shows in our `cutime`/`cstime` once waited for) or this process
//! itself (the push streams).

use std::{collections::BTreeSet, fs};

use crate::cpu::parse_stat;

/// The clock ticks per second of `/proc/<pid>/stat` (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// The inodes of the sockets listening on `port` in one `/proc/net/tcp` or `tcp6` table
/// (state `0A` is LISTEN; the local address's port is the hex after the colon).
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let inode: u64 = fields.get(9)?.parse().ok()?;
            let (_, hex_port) = local.rsplit_once(':')?;
            let listening = *state == "0A" && u16::from_str_radix(hex_port, 16).ok()? == port;
            (listening && inode != 0).then_some(inode)
        })
        .collect()
}

/// Every process holding a socket that listens on one of `ports` (nginx's master and its
/// workers all hold the inherited listening socket).
pub fn listening_pids(ports: &[u16]) -> Vec<u32> {
    let mut inodes = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for port in ports {
            inodes.extend(listening_inodes(&text, *port));
        }
    }
    if inodes.is_empty() {
        return Vec::new();
    }
    let mut pids = BTreeSet::new();
    for (pid, dir) in crate::cpu::processes() {
        let Ok(fds) = fs::read_dir(dir.join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            if let Some(inode) = socket_inode(&target.to_string_lossy())
                && inodes.contains(&inode)
            {
                pids.insert(pid);
                break;
            }
        }
    }
    pids.into_iter().collect()
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// User + system CPU seconds of `pids` now (processes gone since are left out).
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|line| parse_stat(&line).map(|(_, secs)| secs))
        .sum()
}

/// This process's own CPU seconds and those of its children it has waited for.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SelfTimes {
    pub own: f64,
    pub children: f64,
}

/// Parses `/proc/self/stat`: utime, stime, cutime and cstime are fields 14 to 17.
pub fn parse_self_stat(line: &str) -> Option<SelfTimes> {
    let close = line.rfind(')')?;
    let fields: Vec<f64> = line
        .get(close + 2..)?
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse::<f64>().ok())
        .collect::<Option<_>>()?;
    let [utime, stime, cutime, cstime] = fields[..] else {
        return None;
    };
    Some(SelfTimes {
        own: (utime + stime) / TICKS_PER_SECOND,
        children: (cutime + cstime) / TICKS_PER_SECOND,
    })
}

pub fn self_times() -> SelfTimes {
    fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|line| parse_self_stat(&line))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:6448 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 6142 1 0000000028af7b10 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5451 1 00000000695a76dc 100 0 0 10 0
   2: 0100007F:1F90 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000     0        0 7777 1 00000000695a76dc 100 0 0 10 0
";

    #[test]
    fn only_the_listening_socket_of_the_port_is_found() {
        // 0x1F90 = 8080; the established connection (state 01) on the same port is not it.
        assert_eq!(listening_inodes(TCP, 8080), vec![5451]);
        assert_eq!(listening_inodes(TCP, 0x6448), vec![6142]);
        assert!(listening_inodes(TCP, 9999).is_empty());
        assert_eq!(socket_inode("socket:[5451]"), Some(5451));
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn self_stat_gives_own_and_waited_for_children_seconds() {
        let line = "4505 (load (test)) R 4494 4494 15178 0 -1 4194304 105 0 0 0 150 50 700 100 20 0 1 0 747162";
        assert_eq!(
            parse_self_stat(line),
            Some(SelfTimes {
                own: 2.0,
                children: 8.0
            })
        );
        assert_eq!(parse_self_stat("4505 (x) R 1 2"), None);
    }
}
