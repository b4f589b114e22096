//! Local load sampling behind [`LoadSource`] (procfs for real, scripted for tests) and
//! openMosix-style normalisation and smoothing of the local estimate.

use std::collections::VecDeque;

/// One raw sample of this machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Online CPUs (at least 1).
    pub cpus: u32,
    /// 1-minute load average (shown to users; too slow to balance on).
    pub loadavg1: f64,
    /// Tasks runnable right now, not counting the sampler: the instantaneous run queue that
    /// openMosix balanced on. The smoothed, normalised load is built from it.
    pub runnable: f64,
    /// Bytes.
    pub mem_total: u64,
    /// Bytes available (MemAvailable).
    pub mem_free: u64,
}

/// Why sampling failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// /proc could not be read.
    #[error("reading /proc")]
    Proc(#[from] procfs::ProcError),
    /// The scripted source ran dry.
    #[error("no more scripted samples")]
    Exhausted,
}

/// Something that measures this machine.
pub trait LoadSource: Send {
    /// Take one sample.
    fn sample(&mut self) -> Result<Sample, LoadError>;
}

/// The real source: /proc/loadavg, /proc/meminfo and the online CPU count.
#[derive(Debug, Default)]
pub struct ProcLoadSource;

impl LoadSource for ProcLoadSource {
    fn sample(&mut self) -> Result<Sample, LoadError> {
        use procfs::Current;
        let la = procfs::LoadAverage::current()?;
        let mem = procfs::Meminfo::current()?;
        Ok(Sample {
            cpus: online_cpus(),
            loadavg1: f64::from(la.one),
            // /proc/loadavg's running count is the kernel's nr_running, as /proc/stat's
            // procs_running; the reading thread itself is running while it reads.
            runnable: f64::from(la.cur.saturating_sub(1)),
            mem_total: mem.mem_total,
            mem_free: mem.mem_available.unwrap_or(mem.mem_free),
        })
    }
}

/// Online CPUs (not the affinity mask: load average counts the whole machine).
fn online_cpus() -> u32 {
    // SAFETY: sysconf has no preconditions and only reads system configuration.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
}

/// A test source replaying given samples, then repeating the last one.
#[derive(Debug, Default)]
pub struct ScriptedLoadSource {
    queue: VecDeque<Sample>,
    last: Option<Sample>,
}

impl ScriptedLoadSource {
    /// Replay `samples` in order.
    pub fn new(samples: impl IntoIterator<Item = Sample>) -> Self {
        Self {
            queue: samples.into_iter().collect(),
            last: None,
        }
    }
}

impl LoadSource for ScriptedLoadSource {
    fn sample(&mut self) -> Result<Sample, LoadError> {
        if let Some(s) = self.queue.pop_front() {
            self.last = Some(s);
        }
        self.last.ok_or(LoadError::Exhausted)
    }
}

/// Normalised load: `runnable / cpus * 1000 / speed`. 1.0 means each CPU of this node carries
/// one standard (speed 1000) CPU's worth of work; a faster node shows less for the same work.
pub fn normalise(runnable: f64, cpus: u32, speed: u32) -> f64 {
    let cpus = f64::from(cpus.max(1));
    let speed = f64::from(speed.max(1));
    (runnable.max(0.0) / cpus) * 1000.0 / speed
}

/// Weight of a new sample when the load rises: slow (about 8 s to reach 90 % of a step),
/// so a short burst does not make this node look busy and push work away.
pub const RISE_WEIGHT: f64 = 0.25;
/// Weight of a new sample when the load falls: fast (90 % in 2 s), so an idle node
/// advertises itself quickly (openMosix: local estimate rises slowly and falls fast).
pub const FALL_WEIGHT: f64 = 0.7;

/// Readings per sample: the run queue is read this many times per second and the median kept,
/// so a thread that happens to run at the instant of one reading (omd's own work, a console
/// command) does not count as load.
pub const READINGS_PER_SAMPLE: usize = 5;

/// Collects [`READINGS_PER_SAMPLE`] readings into one sample whose `runnable` is their median.
#[derive(Debug, Default)]
pub struct Readings(Vec<Sample>);

impl Readings {
    /// Add a reading; every [`READINGS_PER_SAMPLE`]th returns the sample of the last ones.
    pub fn add(&mut self, s: Sample) -> Option<Sample> {
        self.0.push(s);
        if self.0.len() < READINGS_PER_SAMPLE {
            return None;
        }
        let mut q: Vec<f64> = self.0.iter().map(|r| r.runnable).collect();
        q.sort_by(f64::total_cmp);
        let mut out = s;
        out.runnable = q[q.len() / 2];
        self.0.clear();
        Some(out)
    }
}

/// The smoothed local load estimate.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Smoother {
    value: Option<f64>,
}

impl Smoother {
    /// Feed one normalised sample (one per second) and return the new estimate.
    pub fn update(&mut self, sample: f64) -> f64 {
        let v = match self.value {
            None => sample,
            Some(old) if sample > old => old + (sample - old) * RISE_WEIGHT,
            Some(old) => old + (sample - old) * FALL_WEIGHT,
        };
        self.value = Some(v);
        v
    }

    /// The current estimate.
    pub fn value(&self) -> Option<f64> {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert!((normalise(4.0, 4, 1000) - 1.0).abs() < 1e-9);
        assert!((normalise(4.0, 2, 2000) - 1.0).abs() < 1e-9);
        assert!((normalise(1.0, 4, 500) - 0.5).abs() < 1e-9);
        assert_eq!(
            normalise(3.0, 0, 0),
            3000.0,
            "zero cpus/speed never divide by zero"
        );
        assert_eq!(normalise(-1.0, 1, 1000), 0.0);
    }

    #[test]
    fn rises_slowly_falls_fast() {
        let mut s = Smoother::default();
        assert_eq!(s.update(0.0), 0.0);
        let mut up = 0;
        while s.update(1.0) < 0.9 {
            up += 1;
        }
        let mut down = 0;
        while s.update(0.0) > 0.1 {
            down += 1;
        }
        assert!(up >= 6, "rise took {up} s");
        assert!(down <= 2, "fall took {down} s");
        assert!(up > 3 * down);
    }

    #[test]
    fn median_of_readings() {
        let mut r = Readings::default();
        let at = |runnable| Sample {
            cpus: 1,
            loadavg1: 0.0,
            runnable,
            mem_total: 1,
            mem_free: 1,
        };
        for x in [2.0, 3.0, 2.0, 2.0] {
            assert_eq!(r.add(at(x)), None);
        }
        assert_eq!(r.add(at(5.0)).unwrap().runnable, 2.0);
        assert_eq!(r.add(at(1.0)), None, "starts a new window");
    }

    #[test]
    fn scripted_source_repeats_last() {
        let s = Sample {
            cpus: 2,
            loadavg1: 1.0,
            runnable: 1.0,
            mem_total: 10,
            mem_free: 5,
        };
        let mut src = ScriptedLoadSource::new([s]);
        assert_eq!(src.sample().unwrap(), s);
        assert_eq!(src.sample().unwrap(), s);
        assert!(ScriptedLoadSource::default().sample().is_err());
        assert!(ProcLoadSource.sample().unwrap().cpus >= 1);
    }
}
