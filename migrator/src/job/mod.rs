//! A job: a command started by `omrun`, run in its own PID and time namespaces under our init,
//! with its stdio held by a keeper process on whichever node it runs. The records here are the
//! one definition of a job shared by omd, omrun, omctl and the keeper.

pub mod init;
pub mod keeper;
pub mod record;
pub mod retain;
pub mod spawn;
pub mod stdio;
pub mod tree;
