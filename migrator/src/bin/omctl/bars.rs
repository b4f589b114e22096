//! The monitor's views (mosmon's `-l -s -m -u`) and the bar each node gets in them: a fraction
//! of the chart's scale, a short figure and a style class. Pure: no terminal, no ratatui.

use migrator::api::{MemberState, NodeInfo};

use crate::cli::ViewArg;
use crate::units;

/// A monitor view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Normalised load: 1.0 = one standard CPU busy (per CPU, per speed).
    Load,
    /// Speed figure: 1000 = one standard CPU.
    Speed,
    /// Memory used, as a share of each node's total.
    Mem,
    /// Utilisation: raw 1-minute load per CPU, capped at 100%.
    Util,
}

impl View {
    /// The view a key selects (mosmon's letters).
    pub fn from_key(c: char) -> Option<Self> {
        match c {
            'l' => Some(Self::Load),
            's' => Some(Self::Speed),
            'm' => Some(Self::Mem),
            'u' => Some(Self::Util),
            _ => None,
        }
    }

    /// Short name for the header.
    pub fn name(self) -> &'static str {
        match self {
            Self::Load => "load",
            Self::Speed => "speed",
            Self::Mem => "memory",
            Self::Util => "utilisation",
        }
    }

    /// What a bar means in this view.
    pub fn legend(self) -> &'static str {
        match self {
            Self::Load => "1.0 = one standard CPU busy",
            Self::Speed => "1000 = one standard CPU",
            Self::Mem => "used of total, per node",
            Self::Util => "load per CPU, capped at 100%",
        }
    }
}

impl From<ViewArg> for View {
    fn from(v: ViewArg) -> Self {
        match v {
            ViewArg::Load => Self::Load,
            ViewArg::Speed => Self::Speed,
            ViewArg::Mem => Self::Mem,
            ViewArg::Util => Self::Util,
        }
    }
}

/// How a bar is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Below 75% of capacity (or no notion of capacity, as for speed).
    Ok,
    /// 75% to 100%.
    Busy,
    /// At or beyond capacity.
    Over,
    /// Suspect: figures shown, label warns.
    Suspect,
    /// Dead: greyed, no figures (the last ones are stale).
    Dead,
    /// Observer or no load record yet: no bar.
    NoData,
}

/// One node's bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Node name (`*` prefix for this node).
    pub label: String,
    /// Height as a share of the chart's top, `0.0..=1.0`.
    pub fraction: f64,
    /// Short figure drawn with the bar.
    pub text: String,
    /// Longer figure, for horizontal bars that have room for it.
    pub detail: String,
    /// Style class.
    pub class: Class,
}

/// A whole chart: bars in display order and the figure at the top of the scale.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// One per node.
    pub bars: Vec<Bar>,
    /// The value a full bar stands for, as text.
    pub top: String,
}

/// The chart for `nodes` (already in display order) in `view`.
pub fn chart(nodes: &[NodeInfo], view: View) -> Chart {
    let top = scale_top(nodes, view);
    let bars = nodes.iter().map(|n| bar(n, view, top)).collect();
    let top = match view {
        View::Load => units::load(top),
        View::Speed => format!("{top:.0}"),
        View::Mem | View::Util => "100%".to_owned(),
    };
    Chart { bars, top }
}

/// The value of a full bar. Load: 1.0 or the highest live load rounded up to a whole number,
/// so bars keep their meaning as load rises; speed: 1000 or the fastest node; shares: 1.0.
pub fn scale_top(nodes: &[NodeInfo], view: View) -> f64 {
    let live = nodes
        .iter()
        .filter(|n| n.state != MemberState::Dead && !n.observer)
        .filter_map(|n| n.load);
    match view {
        View::Load => live
            .map(|l| l.load)
            .filter(|l| l.is_finite())
            .fold(1.0_f64, f64::max)
            .ceil(),
        View::Speed => live.map(|l| f64::from(l.speed)).fold(1000.0, f64::max),
        View::Mem | View::Util => 1.0,
    }
}

/// One node's bar against a scale whose top is `top` (> 0).
pub fn bar(n: &NodeInfo, view: View, top: f64) -> Bar {
    let label = if n.is_self {
        format!("*{}", n.name)
    } else {
        n.name.clone()
    };
    let empty = |text: &str, class| Bar {
        label: label.clone(),
        fraction: 0.0,
        text: text.to_owned(),
        detail: text.to_owned(),
        class,
    };
    if n.state == MemberState::Dead {
        return empty("dead", Class::Dead);
    }
    if n.observer {
        return empty("obs", Class::NoData);
    }
    let Some(l) = n.load else {
        return empty("-", Class::NoData);
    };
    let (value, heat, text, detail) = match view {
        View::Load => (l.load, l.load, units::load(l.load), units::load(l.load)),
        View::Speed => {
            let s = f64::from(l.speed);
            (
                s,
                0.0,
                l.speed.to_string(),
                format!("{} ({} cpus)", l.speed, l.cpus),
            )
        }
        View::Mem => {
            let used = l.mem_total.saturating_sub(l.mem_free);
            let share = ratio(used, l.mem_total);
            let detail = format!(
                "{} used, {} free",
                units::bytes(used),
                units::bytes(l.mem_free)
            );
            (share, share, units::percent(share), detail)
        }
        View::Util => {
            let u = utilisation(l.loadavg1, l.cpus);
            (u, u, units::percent(u), units::percent(u))
        }
    };
    let class = if n.state == MemberState::Suspect {
        Class::Suspect
    } else if heat >= 1.0 {
        Class::Over
    } else if heat >= 0.75 {
        Class::Busy
    } else {
        Class::Ok
    };
    Bar {
        label,
        fraction: (value / top).clamp(0.0, 1.0),
        text,
        detail,
        class,
    }
}

/// Raw 1-minute load per CPU, capped at 1.0 (100%): a node cannot be more than fully used.
pub fn utilisation(loadavg1: f64, cpus: u32) -> f64 {
    (loadavg1 / f64::from(cpus.max(1))).clamp(0.0, 1.0)
}

/// `part / whole`, 0 when the whole is 0.
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    // Memory sizes fit f64's 53 bits for any real machine; a share needs no more.
    #[allow(clippy::cast_precision_loss)]
    let r = part as f64 / whole as f64;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::{sort, tests::sample};

    fn sorted() -> Vec<NodeInfo> {
        let mut n = sample();
        sort(&mut n);
        n
    }

    #[test]
    fn keys_pick_views() {
        assert_eq!(View::from_key('l'), Some(View::Load));
        assert_eq!(View::from_key('m'), Some(View::Mem));
        assert_eq!(View::from_key('x'), None);
    }

    #[test]
    fn load_view() {
        let c = chart(&sorted(), View::Load);
        assert_eq!(c.top, "1.00");
        let b = &c.bars[0];
        assert_eq!((b.label.as_str(), b.text.as_str()), ("*node1", "0.25"));
        assert!((b.fraction - 0.25).abs() < 1e-9);
        assert_eq!(b.class, Class::Ok);
        assert_eq!(
            (c.bars[1].text.as_str(), c.bars[1].class),
            ("obs", Class::NoData)
        );
        assert_eq!(
            (c.bars[2].text.as_str(), c.bars[2].class),
            ("dead", Class::Dead)
        );
    }

    #[test]
    fn load_scale_grows_in_whole_cpus() {
        let mut nodes = sorted();
        if let Some(l) = nodes[0].load.as_mut() {
            l.load = 2.3;
        }
        assert!((scale_top(&nodes, View::Load) - 3.0).abs() < 1e-9);
        let b = bar(&nodes[0], View::Load, 3.0);
        assert_eq!(b.class, Class::Over);
        assert!((b.fraction - 2.3 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn memory_and_utilisation() {
        let nodes = sorted();
        let m = bar(&nodes[0], View::Mem, 1.0);
        assert_eq!(m.text, "50%");
        assert_eq!(m.detail, "1.0G used, 1.0G free");
        // loadavg1 0.5 over 2 CPUs.
        assert_eq!(bar(&nodes[0], View::Util, 1.0).text, "25%");
        assert!((utilisation(7.0, 2) - 1.0).abs() < 1e-9);
        assert!((utilisation(1.0, 0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn speed_scale_is_fastest_node() {
        let mut nodes = sorted();
        if let Some(l) = nodes[0].load.as_mut() {
            l.speed = 2500;
        }
        let c = chart(&nodes, View::Speed);
        assert_eq!(c.top, "2500");
        assert!((c.bars[0].fraction - 1.0).abs() < 1e-9);
    }
}
