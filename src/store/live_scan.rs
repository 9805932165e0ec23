//! Re-reading the live commit log for dispatch after an actor restart.
//!
//! A `Queue` actor that restarted may have lost `Dispatch` messages (a panic
//! between receiving and writing them); the commit-log writer that restarted
//! may have appended records it never dispatched. Both rebuild from the log
//! itself: the published records in a range, with the dispatch information
//! recovery would compute (schedule / timer records carry their due time as
//! tags code, as in RocketMQ's `ScheduleMessageService` / `TimerMessageStore`).

use super::commit_log::CommitLogReader;
use super::config::StoreConfig;
use super::recovery::{dispatch_info, parked_due_time, DispatchRequest};

/// Calls `f` for every published record in `[from, to)` in log order,
/// skipping segment-end fillers. Returns where the walk stopped (`to`, or the
/// first position that holds no readable record).
pub fn scan_published(
    reader: &CommitLogReader,
    cfg: &StoreConfig,
    from: i64,
    to: i64,
    mut f: impl FnMut(DispatchRequest),
) -> i64 {
    let to = to.min(reader.max_offset());
    let mut at = from.max(reader.min_offset());
    while at < to {
        let Some(slice) = reader.record_slice(at) else {
            // A blank filler (or nothing) here: the next segment, if any.
            let next = reader.next_segment_start(at);
            if next <= at || next >= to {
                return at;
            }
            at = next;
            continue;
        };
        let rec = slice.as_ref();
        let Ok(mut d) = dispatch_info(rec) else {
            return at;
        };
        if d.phys_offset != at || d.size <= 0 {
            return at;
        }
        if let Some(due) = parked_due_time(&d, rec, cfg) {
            d.tags_code = due;
        }
        at += d.size as i64;
        f(d);
    }
    at
}
