//! Automatic load balancing, openMosix-style: a pure [`decide`] turns a [`View`] of the cluster
//! (loads, this node's jobs, flags) into at most one move per round under a [`Policy`]; [`place`]
//! picks a node for a new job from the same view. [`meter`] measures jobs in /proc, [`gather`]
//! builds the view from omd's tables, and [`driver`] runs the rounds in omd.

pub mod decide;
pub mod driver;
pub mod gather;
pub mod meter;
pub mod policy;
pub mod recent;
pub mod sim;
pub mod view;

pub use decide::{Move, admit, decide, place};
pub use policy::Policy;
pub use view::{Candidate, NodeLoad, Peer, RecentMove, View};
