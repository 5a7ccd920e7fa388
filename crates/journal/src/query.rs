//! Which entries a listing shows. The store walks entries newest first and asks the filter about
//! each, so a filter never needs the whole journal in memory.

use jiff::civil::Date;

use crate::entry::{Entry, Scale, Status};

/// The conditions of `failup list`; every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Filter {
    /// Only entries that happened on or after this day.
    pub since: Option<Date>,
    /// Only entries that happened on or before this day.
    pub until: Option<Date>,
    /// Only entries carrying every one of these tags (already normalized).
    pub tags: Vec<String>,
    /// Only entries in this area (compared case-insensitively).
    pub area: Option<String>,
    /// Only entries of this scale.
    pub scale: Option<Scale>,
    /// Only entries whose status is open.
    pub open: bool,
    /// Only entries in which every one of these words appears in some text field,
    /// case-insensitively.
    pub search: Vec<String>,
}

impl Filter {
    /// Splits a search phrase into lowercase words.
    pub fn with_search(mut self, words: &str) -> Filter {
        self.search = words.split_whitespace().map(str::to_lowercase).collect();
        self
    }

    /// Whether the entry passes every condition.
    pub fn matches(&self, entry: &Entry) -> bool {
        if self.since.is_some_and(|d| entry.day < d) || self.until.is_some_and(|d| entry.day > d) {
            return false;
        }
        if !self.tags.iter().all(|t| entry.tags.contains(t)) {
            return false;
        }
        if let Some(area) = &self.area {
            let same = |a: &str| a.to_lowercase() == area.to_lowercase();
            if !entry.area.as_deref().is_some_and(same) {
                return false;
            }
        }
        if self.scale.is_some_and(|s| s != entry.scale) {
            return false;
        }
        if self.open && entry.status() != Status::Open {
            return false;
        }
        if !self.search.is_empty() {
            let fields: Vec<String> = entry.text_fields().map(str::to_lowercase).collect();
            if !self
                .search
                .iter()
                .all(|w| fields.iter().any(|f| f.contains(w.as_str())))
            {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{EntryId, NewEntry};
    use jiff::Timestamp;

    fn entry(text: &str, tags: &[&str], day: Date) -> Entry {
        NewEntry {
            text: text.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            area: Some("Work".into()),
            ..NewEntry::default()
        }
        .into_entry(EntryId::from_parts(1, 1), Timestamp::UNIX_EPOCH, day)
        .expect("entry")
    }

    #[test]
    fn every_condition_must_hold() {
        let d = Date::constant(2026, 5, 1);
        let e = entry("Missed the Train to Berlin", &["travel", "late"], d);
        assert!(Filter::default().matches(&e));
        assert!(Filter::default().with_search("train berlin").matches(&e));
        assert!(!Filter::default().with_search("train paris").matches(&e));
        let tags = |t: &[&str]| Filter {
            tags: t.iter().map(|s| s.to_string()).collect(),
            ..Filter::default()
        };
        assert!(tags(&["travel"]).matches(&e));
        assert!(!tags(&["travel", "work"]).matches(&e));
        let area = Filter {
            area: Some("work".into()),
            ..Filter::default()
        };
        assert!(area.matches(&e));
        let since = Filter {
            since: Some(Date::constant(2026, 5, 2)),
            ..Filter::default()
        };
        assert!(!since.matches(&e));
        let until = Filter {
            until: Some(d),
            ..Filter::default()
        };
        assert!(until.matches(&e));
        let open = Filter {
            open: true,
            ..Filter::default()
        };
        assert!(open.matches(&e));
        let macro_only = Filter {
            scale: Some(Scale::Macro),
            ..Filter::default()
        };
        assert!(!macro_only.matches(&e));
    }
}
