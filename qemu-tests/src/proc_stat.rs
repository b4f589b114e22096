//! The few fields of `/proc/PID/stat` the lab reads (proc(5)): state, process group, CPU time and
//! start time. One parser, because the command name in parentheses may hold spaces and `)`.

/// A process's stat line, the fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// State letter (`R`, `S`, `Z`, …).
    pub state: char,
    /// Process group.
    pub pgrp: u32,
    /// User time, clock ticks.
    pub utime: u64,
    /// System time, clock ticks.
    pub stime: u64,
    /// Start time, clock ticks since boot.
    pub start_time: u64,
}

impl Stat {
    /// Parse one stat line.
    pub fn parse(line: &str) -> Option<Stat> {
        // Fields after the parenthesised command name start at field 3 (state).
        let (_, rest) = line.rsplit_once(')')?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |field: usize| -> Option<u64> { f.get(field - 3)?.parse().ok() };
        Some(Stat {
            state: f.first()?.chars().next()?,
            pgrp: u32::try_from(num(5)?).ok()?,
            utime: num(14)?,
            stime: num(15)?,
            start_time: num(22)?,
        })
    }

    /// Read process `pid`'s, if it exists.
    pub fn of(pid: u32) -> Option<Stat> {
        Stat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Whether it is a zombie (exited, not yet reaped).
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_name_with_spaces_and_parentheses() {
        let line = "4242 (a) b (c) S 1 4240 4240 0 -1 4194560 0 0 0 0 7 3 0 0 20 0 1 0 123456 0 0";
        let s = Stat::parse(line).unwrap();
        assert_eq!(
            s,
            Stat {
                state: 'S',
                pgrp: 4240,
                utime: 7,
                stime: 3,
                start_time: 123456
            }
        );
        assert!(Stat::parse("4242 (a").is_none());
        let me = Stat::of(std::process::id()).unwrap();
        assert!(!me.is_zombie() && me.start_time > 0);
    }
}
