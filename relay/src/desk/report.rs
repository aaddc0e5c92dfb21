//! The desk's figures, computed from its stored events alone (`relay report`).
//!
//! Words as the figures use them:
//!
//! - a request *enters* a tier's queue when it is filed (tier 1), escalated into it or overflows
//!   into it; it counts once among that tier's requests however often it enters;
//! - the *wait before first response* of an entry runs from entering the queue until a
//!   technician takes it (a request taken back after a hold or a return is not a first
//!   response);
//! - *abandoned*: cancelled by the user or given up for an absent agent while waiting; the rate
//!   is over the tier's requests;
//! - *escalation rate*: requests escalated out of the tier (or by the technician) over those
//!   taken there (or by them);
//! - *first-contact resolution*, at tier 1: requests closed as resolved by the technician who
//!   took them first, with nobody else taking them and no escalation, over the requests first
//!   taken at tier 1;
//! - *handle time*: from a take until that technician closes, escalates, holds or loses the
//!   request;
//! - the *survey* of a request counts for the tier it was closed in and the technician who
//!   closed it (or the last one to take it).
//!
//! Medians of an even count are the mean of the two middle values; the 90th percentile is the
//! nearest rank (the ⌈0.9 n⌉-th smallest).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::{Event, MAX_TIER};

/// The figures of one tier or one technician.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Requests that entered the tier's queue; for a technician, requests they took.
    pub requests: usize,
    /// Waits before first response, in seconds.
    pub wait_median_secs: Option<f64>,
    pub wait_p90_secs: Option<f64>,
    /// Cancelled or abandoned while waiting (tiers only).
    pub abandoned: Option<usize>,
    pub abandonment_rate: Option<f64>,
    pub escalated: usize,
    pub escalation_rate: Option<f64>,
    /// Tier 1 (and the technicians who took requests first at tier 1) only.
    pub first_contact_resolution: Option<f64>,
    pub handle_median_secs: Option<f64>,
    pub surveys: usize,
    pub survey_average: Option<f64>,
}

/// The figures per tier and per technician.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The first instant of the requests counted (filed at or after), ms since the epoch.
    pub since_unix_ms: Option<u64>,
    pub tier: Option<u8>,
    pub tiers: Vec<TierRow>,
    pub technicians: Vec<TechnicianRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierRow {
    pub tier: u8,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TechnicianRow {
    pub name: String,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Default)]
struct Acc {
    requests: BTreeSet<u64>,
    waits: Vec<u64>,
    abandoned: usize,
    taken: BTreeSet<u64>,
    escalated: BTreeSet<u64>,
    first_contacts: BTreeSet<u64>,
    resolved_first: BTreeSet<u64>,
    handles: Vec<u64>,
    surveys: Vec<u8>,
}

impl Acc {
    fn figures(&self, tier_row: bool) -> Figures {
        let rate = |n: usize, of: usize| (of > 0).then(|| n as f64 / of as f64);
        let secs = |ms: Option<u64>| ms.map(|v| v as f64 / 1000.0);
        let mut waits = self.waits.clone();
        waits.sort_unstable();
        let mut handles = self.handles.clone();
        handles.sort_unstable();
        let requests = if tier_row {
            self.requests.len()
        } else {
            self.taken.len()
        };
        Figures {
            requests,
            wait_median_secs: median(&waits),
            wait_p90_secs: secs(nearest_rank(&waits, 0.9)),
            abandoned: tier_row.then_some(self.abandoned),
            abandonment_rate: if tier_row {
                rate(self.abandoned, self.requests.len())
            } else {
                None
            },
            escalated: self.escalated.len(),
            escalation_rate: rate(self.escalated.len(), self.taken.len()),
            first_contact_resolution: rate(self.resolved_first.len(), self.first_contacts.len()),
            handle_median_secs: median(&handles),
            surveys: self.surveys.len(),
            survey_average: (!self.surveys.is_empty()).then(|| {
                self.surveys.iter().map(|&s| f64::from(s)).sum::<f64>() / self.surveys.len() as f64
            }),
        }
    }
}

/// The median of sorted milliseconds, in seconds.
fn median(sorted: &[u64]) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let ms = if n % 2 == 1 {
        sorted[n / 2] as f64
    } else {
        (sorted[n / 2 - 1] as f64 + sorted[n / 2] as f64) / 2.0
    };
    Some(ms / 1000.0)
}

/// The nearest-rank percentile of sorted values.
fn nearest_rank(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// What the walk knows of one request.
#[derive(Default)]
struct Track {
    tier: u8,
    /// When the entry now waiting for a first response entered its queue.
    entry: Option<u64>,
    /// Who has it now, in which tier, since when.
    take: Option<(String, u8, u64)>,
    first: Option<(String, u8)>,
    /// Someone else took it, or it moved on, after the first take.
    others: bool,
    /// Who closed it (or took it last), and in which tier.
    last: Option<(String, u8)>,
    score: Option<u8>,
}

/// Ends the take in hand at `at`, counting its handle time.
fn end_take(
    track: &mut Track,
    at: u64,
    tiers: &mut BTreeMap<u8, Acc>,
    people: &mut BTreeMap<String, Acc>,
    counts: impl Fn(u8) -> bool,
) {
    if let Some((by, t, since)) = track.take.take() {
        let handle = at.saturating_sub(since);
        tiers.entry(t).or_default().handles.push(handle);
        if counts(t) {
            people.entry(by.clone()).or_default().handles.push(handle);
        }
        track.last = Some((by, t));
    }
}

/// The figures of the requests filed at or after `since` (ms since the epoch), for every tier
/// or only `tier` (then the technicians' figures count their work in that tier only).
pub fn report<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    since: Option<u64>,
    tier: Option<u8>,
) -> Report {
    let mut tiers: BTreeMap<u8, Acc> = (1..=MAX_TIER).map(|t| (t, Acc::default())).collect();
    let mut people: BTreeMap<String, Acc> = BTreeMap::new();
    let mut tracks: HashMap<u64, Track> = HashMap::new();
    let counts = |t: u8| tier.is_none_or(|only| only == t);
    for event in events {
        let id = event.id();
        if let Event::Filed { at, tier: t, .. } = event {
            if since.is_none_or(|s| *at >= s) {
                tracks.insert(
                    id,
                    Track {
                        tier: *t,
                        entry: Some(*at),
                        ..Track::default()
                    },
                );
                tiers.entry(*t).or_default().requests.insert(id);
            }
            continue;
        }
        let Some(track) = tracks.get_mut(&id) else {
            continue;
        };
        let at = event.at();
        match event {
            Event::Filed { .. } | Event::Offered { .. } | Event::Declined { .. } => {}
            Event::Taken { by, .. } => {
                let t = track.tier;
                let person_counts = counts(t);
                let acc = tiers.entry(t).or_default();
                acc.taken.insert(id);
                let wait = track.entry.take().map(|q| at.saturating_sub(q));
                if let Some(w) = wait {
                    acc.waits.push(w);
                }
                match &track.first {
                    None => {
                        track.first = Some((by.clone(), t));
                        if t == 1 {
                            acc.first_contacts.insert(id);
                        }
                    }
                    Some((first, _)) if first != by => track.others = true,
                    Some(_) => {}
                }
                if person_counts {
                    let p = people.entry(by.clone()).or_default();
                    p.taken.insert(id);
                    if let Some(w) = wait {
                        p.waits.push(w);
                    }
                    if t == 1 && track.first.as_ref().is_some_and(|(f, _)| f == by) {
                        p.first_contacts.insert(id);
                    }
                }
                track.take = Some((by.clone(), t, at));
                track.last = Some((by.clone(), t));
            }
            Event::Escalated { by, to, .. } => {
                let from = track.tier;
                end_take(track, at, &mut tiers, &mut people, counts);
                tiers.entry(from).or_default().escalated.insert(id);
                if counts(from) {
                    people.entry(by.clone()).or_default().escalated.insert(id);
                }
                track.others = true;
                track.tier = to.tier();
                track.entry = Some(at);
                tiers.entry(to.tier()).or_default().requests.insert(id);
            }
            Event::Held { .. } | Event::Returned { .. } => {
                end_take(track, at, &mut tiers, &mut people, counts)
            }
            Event::Overflowed { tier: t, .. } => {
                if track.first.is_some() {
                    track.others = true;
                }
                track.tier = *t;
                track.entry = Some(at);
                tiers.entry(*t).or_default().requests.insert(id);
            }
            Event::Closed { by, resolved, .. } => {
                end_take(track, at, &mut tiers, &mut people, counts);
                track.last = Some((by.clone(), track.tier));
                let first_alone = !track.others
                    && track
                        .first
                        .as_ref()
                        .is_some_and(|(f, t)| f == by && *t == 1);
                if *resolved && first_alone {
                    tiers.entry(1).or_default().resolved_first.insert(id);
                    if counts(1) {
                        people
                            .entry(by.clone())
                            .or_default()
                            .resolved_first
                            .insert(id);
                    }
                }
            }
            Event::Cancelled { .. } | Event::Abandoned { .. } => {
                track.entry = None;
                tiers.entry(track.tier).or_default().abandoned += 1;
            }
            Event::Surveyed { score, .. } => track.score = Some(*score),
        }
    }
    for track in tracks.values() {
        if let (Some(score), Some((by, t))) = (track.score, &track.last) {
            tiers.entry(*t).or_default().surveys.push(score);
            if counts(*t) {
                people.entry(by.clone()).or_default().surveys.push(score);
            }
        }
    }
    Report {
        since_unix_ms: since,
        tier,
        tiers: tiers
            .into_iter()
            .filter(|(t, _)| counts(*t))
            .map(|(tier, acc)| TierRow {
                tier,
                figures: acc.figures(true),
            })
            .collect(),
        technicians: people
            .into_iter()
            .filter(|(_, acc)| !acc.taken.is_empty())
            .map(|(name, acc)| TechnicianRow {
                name,
                figures: acc.figures(false),
            })
            .collect(),
    }
}

impl Report {
    /// Rows of `scope, name, figures…` with a header, for a spreadsheet.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "scope,name,requests,wait_median_secs,wait_p90_secs,abandoned,abandonment_rate,\
             escalated,escalation_rate,first_contact_resolution,handle_median_secs,surveys,\
             survey_average\n",
        );
        let rows = self
            .tiers
            .iter()
            .map(|r| ("tier", r.tier.to_string(), &r.figures))
            .chain(
                self.technicians
                    .iter()
                    .map(|r| ("technician", csv_field(&r.name), &r.figures)),
            );
        for (scope, name, f) in rows {
            let cells = [
                f.requests.to_string(),
                num(f.wait_median_secs),
                num(f.wait_p90_secs),
                f.abandoned.map(|n| n.to_string()).unwrap_or_default(),
                num(f.abandonment_rate),
                f.escalated.to_string(),
                num(f.escalation_rate),
                num(f.first_contact_resolution),
                num(f.handle_median_secs),
                f.surveys.to_string(),
                num(f.survey_average),
            ];
            out.push_str(&format!("{scope},{name},{}\n", cells.join(",")));
        }
        out
    }

    /// A table a person reads.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let header = format!(
            "{:<16} {:>8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>10} {:>7}\n",
            "",
            "requests",
            "wait p50",
            "wait p90",
            "abandon",
            "escalate",
            "1st-fix",
            "handle p50",
            "survey"
        );
        let row = |name: &str, f: &Figures| {
            format!(
                "{:<16} {:>8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>10} {:>7}\n",
                name,
                f.requests,
                duration(f.wait_median_secs),
                duration(f.wait_p90_secs),
                percent(f.abandonment_rate),
                percent(f.escalation_rate),
                percent(f.first_contact_resolution),
                duration(f.handle_median_secs),
                f.survey_average
                    .map(|a| format!("{a:.1} ({})", f.surveys))
                    .unwrap_or_else(|| "-".into()),
            )
        };
        out.push_str(&header);
        for r in &self.tiers {
            out.push_str(&row(&format!("tier {}", r.tier), &r.figures));
        }
        if !self.technicians.is_empty() {
            out.push('\n');
            out.push_str(&header);
            for r in &self.technicians {
                out.push_str(&row(&r.name, &r.figures));
            }
        }
        out
    }
}

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_default()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn percent(v: Option<f64>) -> String {
    v.map(|v| format!("{:.0} %", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

fn duration(secs: Option<f64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 60.0 => format!("{s:.0} s"),
        Some(s) if s < 3600.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Desk, DeskError, Filing, Target};
    use super::*;

    const MIN: u64 = 60_000;

    fn filing() -> Filing {
        Filing {
            description: "x".into(),
            machine: "pc".into(),
            os: "Debian".into(),
            ticket: None,
        }
    }

    /// A day at the desk, scripted: every event goes through the desk's commands, so the day is
    /// one the relay could have had.
    fn day() -> Vec<Event> {
        let mut d = Desk::new();
        let mut log = Vec::new();
        let mut run = |d: &mut Desk, command: &dyn Fn(&Desk) -> Result<Event, DeskError>| {
            let e = command(d).unwrap();
            d.apply(&e);
            log.push(e);
        };
        // 1: alice takes it after 2 min, resolves it after 10; survey 5.
        run(&mut d, &|d| d.file(filing(), "s1", 0));
        run(&mut d, &|d| d.take(1, "alice", 1, 2 * MIN));
        run(&mut d, &|d| d.close(1, "alice", true, "fixed", 12 * MIN));
        run(&mut d, &|d| d.survey(1, "s1", 5, "", 13 * MIN));
        // 2: bob takes it after 4 min, escalates it to tier 2 after 6; carol takes it there
        // after 8 more and resolves it after 20; survey 3.
        run(&mut d, &|d| d.file(filing(), "s2", 10 * MIN));
        run(&mut d, &|d| d.take(2, "bob", 1, 14 * MIN));
        run(&mut d, &|d| {
            d.escalate(2, "bob", Target::Tier(2), "driver", "sess", 20 * MIN)
        });
        run(&mut d, &|d| d.take(2, "carol", 2, 28 * MIN));
        run(&mut d, &|d| d.close(2, "carol", true, "", 48 * MIN));
        run(&mut d, &|d| d.survey(2, "s2", 3, "slow", 50 * MIN));
        // 3: cancelled after 5 min of waiting.
        run(&mut d, &|d| d.file(filing(), "s3", 30 * MIN));
        run(&mut d, &|d| d.cancel(3, 35 * MIN));
        // 4: alice takes it after 6 min, holds it after 4, takes it back and closes it
        // unresolved after 2 more.
        run(&mut d, &|d| d.file(filing(), "s4", 40 * MIN));
        run(&mut d, &|d| d.take(4, "alice", 1, 46 * MIN));
        run(&mut d, &|d| d.hold(4, "alice", "reboot", "sess4", 50 * MIN));
        run(&mut d, &|d| d.take(4, "alice", 1, 55 * MIN));
        run(&mut d, &|d| d.close(4, "alice", false, "no luck", 57 * MIN));
        // 5: overflows into tier 2 after 15 min; carol takes it 1 min later and resolves it
        // after 9.
        run(&mut d, &|d| d.file(filing(), "s5", 60 * MIN));
        run(&mut d, &|d| d.overflow(5, 75 * MIN));
        run(&mut d, &|d| d.take(5, "carol", 2, 76 * MIN));
        run(&mut d, &|d| d.close(5, "carol", true, "", 85 * MIN));
        // 6: abandoned, its agent away.
        run(&mut d, &|d| d.file(filing(), "s6", 90 * MIN));
        run(&mut d, &|d| d.abandon(6, 120 * MIN));
        log
    }

    #[test]
    fn the_figures_of_a_scripted_day_are_those_worked_out_by_hand() {
        let r = report(&day(), None, None);
        let tier = |t: u8| &r.tiers.iter().find(|row| row.tier == t).unwrap().figures;
        let person = |name: &str| {
            &r.technicians
                .iter()
                .find(|row| row.name == name)
                .unwrap()
                .figures
        };
        let t1 = tier(1);
        // Filed 1 to 6 at tier 1.
        assert_eq!(t1.requests, 6);
        // First responses at tier 1: 2, 4, 6 min (1, 2, 4); median 4, p90 the 3rd of 3: 6.
        assert_eq!(t1.wait_median_secs, Some(240.0));
        assert_eq!(t1.wait_p90_secs, Some(360.0));
        // 3 cancelled, 6 abandoned: 2 of 6.
        assert_eq!(t1.abandoned, Some(2));
        assert_eq!(t1.abandonment_rate, Some(2.0 / 6.0));
        // Taken at tier 1: 1, 2, 4; escalated: 2.
        assert_eq!(t1.escalated, 1);
        assert_eq!(t1.escalation_rate, Some(1.0 / 3.0));
        // First contact at tier 1: 1, 2, 4; resolved alone by the first: 1.
        assert_eq!(t1.first_contact_resolution, Some(1.0 / 3.0));
        // Handles at tier 1: 10 (1), 6 (2), 4 and 2 (4): median of 2, 4, 6, 10 is 5 min.
        assert_eq!(t1.handle_median_secs, Some(300.0));
        // Closed at tier 1 with a survey: 1 (5).
        assert_eq!((t1.surveys, t1.survey_average), (1, Some(5.0)));

        let t2 = tier(2);
        // Entered tier 2: 2 (escalated), 5 (overflowed).
        assert_eq!(t2.requests, 2);
        // Waits: 8 min (2), 1 min (5): median 4.5 min, p90 8.
        assert_eq!(t2.wait_median_secs, Some(270.0));
        assert_eq!(t2.wait_p90_secs, Some(480.0));
        assert_eq!(t2.abandonment_rate, Some(0.0));
        assert_eq!(t2.escalation_rate, Some(0.0));
        assert_eq!(t2.first_contact_resolution, None);
        // Handles 20 and 9: 14.5 min.
        assert_eq!(t2.handle_median_secs, Some(870.0));
        assert_eq!((t2.surveys, t2.survey_average), (1, Some(3.0)));
        assert_eq!(tier(3).requests, 0);

        let alice = person("alice");
        assert_eq!(alice.requests, 2);
        // First responses 2 and 6 min; the take after the hold is none.
        assert_eq!(alice.wait_median_secs, Some(240.0));
        assert_eq!(alice.first_contact_resolution, Some(0.5));
        assert_eq!(alice.escalation_rate, Some(0.0));
        assert_eq!(alice.abandonment_rate, None);
        // Handles 10, 4, 2: median 4 min.
        assert_eq!(alice.handle_median_secs, Some(240.0));
        assert_eq!(alice.survey_average, Some(5.0));
        let bob = person("bob");
        assert_eq!((bob.requests, bob.escalation_rate), (1, Some(1.0)));
        assert_eq!(bob.first_contact_resolution, Some(0.0));
        assert_eq!(bob.survey_average, None);
        let carol = person("carol");
        assert_eq!(carol.requests, 2);
        assert_eq!(carol.first_contact_resolution, None);
        assert_eq!(carol.survey_average, Some(3.0));
    }

    #[test]
    fn since_and_tier_narrow_the_figures() {
        let events = day();
        // From minute 40 on: requests 4, 5, 6.
        let r = report(&events, Some(40 * MIN), None);
        assert_eq!(r.tiers[0].figures.requests, 3);
        assert_eq!(r.tiers[1].figures.requests, 1);
        assert!(r.technicians.iter().all(|row| row.name != "bob"));
        // Tier 2 only: its row, and carol's work there.
        let r = report(&events, None, Some(2));
        assert_eq!(r.tiers.len(), 1);
        assert_eq!(r.tiers[0].tier, 2);
        let names: Vec<&str> = r.technicians.iter().map(|row| row.name.as_str()).collect();
        assert_eq!(names, vec!["carol"]);
        let csv = r.csv();
        assert_eq!(csv.lines().count(), 3, "{csv}");
        assert!(csv
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("tier,2,2,270.000,480.000,0,"));
    }

    #[test]
    fn percentiles_by_hand() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1000]), Some(1.0));
        assert_eq!(median(&[1000, 3000]), Some(2.0));
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(nearest_rank(&ten, 0.9), Some(9));
        assert_eq!(nearest_rank(&ten[..1], 0.9), Some(1));
    }
}
