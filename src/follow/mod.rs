//! Keeping this instance in step with the others sharing its database
//! ([`crate::cluster`]): installing the versions they publish, and the
//! listener thread that wakes when they write (new examples, new versions)
//! and schedules this instance's updates. Above the shared state it
//! schedules through, so the cluster's own module stays below it.

mod adopt;
mod install;
mod listener;
mod shared_dir;

pub(crate) use adopt::{not_here, publish_earlier_lineage, publish_earlier_lineages, Lineage};
pub(crate) use install::{install_published, prune_buffer, write_atomically};
pub(crate) use listener::{listener_loop, refresh};
pub(crate) use shared_dir::{prune_below, publication_path};
