//! File expiry policy (RocketMQ's `CleanCommitLogService`), as pure
//! functions the broker's `Cleaner` actor calls every
//! `cleanResourceInterval`:
//!
//! * commit-log segments whose file was last modified more than
//!   `fileReservedTime` hours ago are deleted at the `deleteWhen` hours
//!   (`"04"`, `"04;16"`), or at any hour once the store's filesystem is more
//!   than `diskMaxUsedSpaceRatio` % full;
//! * past `diskSpaceCleanForciblyRatio` % segments are deleted whatever
//!   their age (never the newest one);
//! * past `diskSpaceWarningLevelRatio` % the store is "disk full": sends are
//!   refused until usage drops back under the forcible ratio.
//!
//! Deleting only unlinks files: a segment's mapping stays valid while any
//! reader still holds a slice of it (see `mapped_file::SegmentSlice`).

use std::path::Path;
use std::time::{Duration, SystemTime};

/// The thresholds and timing of one broker (RocketMQ config names).
#[derive(Debug, Clone, PartialEq)]
pub struct CleanPolicy {
    /// `fileReservedTime`, hours.
    pub file_reserved_hours: u64,
    /// `deleteWhen` parsed: hours of the day (local time).
    pub delete_hours: Vec<u32>,
    /// `diskMaxUsedSpaceRatio`, percent.
    pub max_used_ratio: f64,
    /// `diskSpaceCleanForciblyRatio`, percent.
    pub clean_forcibly_ratio: f64,
    /// `diskSpaceWarningLevelRatio`, percent ("disk full").
    pub warning_ratio: f64,
    /// `cleanFileForciblyEnable`.
    pub clean_forcibly: bool,
}

/// What one check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanDecision {
    /// Delete expired segments now.
    pub delete: bool,
    /// Ignore the age of segments (space is critically short).
    pub ignore_age: bool,
    /// New state of the disk-full flag, if it changes at this ratio
    /// (between the forcible and the warning ratio it keeps its value).
    pub disk_full: Option<bool>,
}

/// Parses `deleteWhen` (`"04"`, `"04;16"`); invalid parts are ignored.
pub fn parse_delete_when(s: &str) -> Vec<u32> {
    s.split(';')
        .filter_map(|p| p.trim().parse::<u32>().ok())
        .filter(|h| *h < 24)
        .collect()
}

/// The current hour of the day in local time.
pub fn local_hour() -> u32 {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as libc::time_t;
    // SAFETY: localtime_r only writes the struct we pass.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return 0;
    }
    tm.tm_hour.clamp(0, 23) as u32
}

/// Used fraction of the filesystem holding `path`, in percent; None when it
/// cannot be determined.
pub fn disk_used_percent(path: &Path) -> Option<f64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes only the struct we pass; `c` is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let total = st.f_blocks as f64 * st.f_frsize as f64;
    let free = st.f_bfree as f64 * st.f_frsize as f64;
    if total <= 0.0 {
        return None;
    }
    Some((total - free) / total * 100.0)
}

impl CleanPolicy {
    /// Decides what to do at `used_percent` disk usage during `hour`.
    pub fn decide(&self, used_percent: f64, hour: u32) -> CleanDecision {
        let disk_full = if used_percent > self.warning_ratio {
            Some(true)
        } else if used_percent > self.clean_forcibly_ratio {
            None
        } else {
            Some(false)
        };
        let critical = used_percent > self.clean_forcibly_ratio;
        let time_up = self.delete_hours.contains(&hour);
        let space_short = used_percent > self.max_used_ratio;
        CleanDecision {
            delete: time_up || space_short || critical,
            ignore_age: critical && self.clean_forcibly,
            disk_full,
        }
    }

    /// Segments last modified before this instant are expired.
    pub fn expired_before(&self, now: SystemTime, ignore_age: bool) -> SystemTime {
        if ignore_age {
            // Anything, even a file touched a moment ago.
            return now + Duration::from_secs(3600);
        }
        now.checked_sub(Duration::from_secs(
            self.file_reserved_hours.saturating_mul(3600),
        ))
        .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::commit_log::tests::{rec, tiny_cfg};
    use crate::store::{CommitLog, Flusher};

    fn policy() -> CleanPolicy {
        CleanPolicy {
            file_reserved_hours: 72,
            delete_hours: parse_delete_when("04;16"),
            max_used_ratio: 75.0,
            clean_forcibly_ratio: 85.0,
            warning_ratio: 90.0,
            clean_forcibly: true,
        }
    }

    #[test]
    fn decisions() {
        let p = policy();
        assert_eq!(p.delete_hours, vec![4, 16]);
        assert_eq!(parse_delete_when("x;25;3"), vec![3]);
        let d = p.decide(10.0, 3);
        assert_eq!(
            (d.delete, d.ignore_age, d.disk_full),
            (false, false, Some(false))
        );
        assert!(p.decide(10.0, 16).delete);
        let d = p.decide(80.0, 3);
        assert_eq!((d.delete, d.ignore_age), (true, false));
        let d = p.decide(87.0, 3);
        assert_eq!((d.delete, d.ignore_age, d.disk_full), (true, true, None));
        assert_eq!(p.decide(95.0, 3).disk_full, Some(true));
        let now = SystemTime::now();
        assert!(p.expired_before(now, true) > now);
        assert_eq!(
            p.expired_before(now, false),
            now - Duration::from_secs(72 * 3600)
        );
        let used = disk_used_percent(Path::new("/")).unwrap();
        assert!((0.0..=100.0).contains(&used));
    }

    /// A reader's slice of a deleted segment keeps valid bytes: deletion
    /// only unlinks the file.
    #[test]
    fn slices_outlive_deleted_segments() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = tiny_cfg(dir.path());
        let mut log = CommitLog::open(&cfg).unwrap();
        let flusher = Flusher::start(&cfg, &log).unwrap();
        let mut first = rec("T", 0, 0, 100);
        let a = log.append(&mut first).unwrap();
        for i in 1..100 {
            log.append(&mut rec("T", 0, i, 100)).unwrap();
        }
        flusher.flush_all().unwrap();
        let held = log.reader().read(a.phys_offset, a.size).unwrap();
        let far = SystemTime::now() + Duration::from_secs(3600);
        let n = log.delete_expired_segments(far, 100).unwrap();
        assert!(n >= 1);
        assert!(log.min_offset() > a.phys_offset);
        assert!(log.reader().read(a.phys_offset, a.size).is_none());
        assert!(!dir.path().join("commitlog/00000000000000000000").exists());
        assert_eq!(&held[..], &first[..]);
        drop(flusher);
    }
}
