//! Screen updates back in sequence.
//!
//! Each update travels on a stream of its own, so they can arrive out of order. [`InOrder`]
//! holds an early one back until those before it are there, and hands them out strictly in
//! sequence. It holds at most `max_early` updates: the agent keeps only a few unacknowledged, so
//! more means a broken or hostile sender. The technician's viewer and the session-log replay
//! both use it, so a replay reorders exactly as the live viewer did.

use std::collections::BTreeMap;

use crate::peer::ScreenUpdate;

/// Why an update cannot be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("update {seq} arrived twice or after it was applied")]
    Stale { seq: u64 },
    #[error("update {seq} is too far ahead (expecting {expected})")]
    TooFarAhead { seq: u64, expected: u64 },
}

pub struct InOrder {
    next_seq: u64,
    early: BTreeMap<u64, ScreenUpdate>,
    max_early: usize,
}

impl InOrder {
    /// Expects update 1 first; holds at most `max_early` back.
    pub fn new(max_early: usize) -> Self {
        Self {
            next_seq: 1,
            early: BTreeMap::new(),
            max_early,
        }
    }

    /// Takes an update in whatever order it came.
    pub fn push(&mut self, update: ScreenUpdate) -> Result<(), OrderError> {
        let seq = update.seq;
        if seq < self.next_seq || self.early.contains_key(&seq) {
            return Err(OrderError::Stale { seq });
        }
        if seq - self.next_seq >= self.max_early as u64 {
            return Err(OrderError::TooFarAhead {
                seq,
                expected: self.next_seq,
            });
        }
        self.early.insert(seq, update);
        Ok(())
    }

    /// The next update in sequence, if it is here.
    pub fn pop(&mut self) -> Option<ScreenUpdate> {
        let u = self.early.remove(&self.next_seq)?;
        self.next_seq += 1;
        Some(u)
    }

    /// The update that later ones held back wait for, if any.
    pub fn missing(&self) -> Option<u64> {
        (!self.early.is_empty()).then_some(self.next_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(seq: u64) -> ScreenUpdate {
        ScreenUpdate {
            seq,
            width: 1,
            height: 1,
            ops: Vec::new(),
            tile_data: Vec::new(),
        }
    }

    #[test]
    fn early_updates_wait_for_their_predecessors() {
        let mut o = InOrder::new(4);
        assert_eq!(o.missing(), None);
        o.push(update(2)).unwrap();
        assert!(o.pop().is_none());
        assert_eq!(o.missing(), Some(1));
        o.push(update(1)).unwrap();
        assert_eq!(o.pop().map(|u| u.seq), Some(1));
        assert_eq!(o.pop().map(|u| u.seq), Some(2));
        assert!(o.pop().is_none());
        assert_eq!(o.missing(), None);
        assert_eq!(o.push(update(2)), Err(OrderError::Stale { seq: 2 }));
        assert_eq!(
            o.push(update(7)),
            Err(OrderError::TooFarAhead {
                seq: 7,
                expected: 3
            })
        );
    }
}
