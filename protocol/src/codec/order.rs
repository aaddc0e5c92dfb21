//! Screen updates back in sequence.
//!
//! Each update travels on a stream of its own, so they can arrive out of order. [`InOrder`]
//! holds an early one back until those before it are there, and hands them out strictly in
//! sequence. It holds at most `max_early` updates, and at most `max_bytes` of them (an update
//! may be tens of megabytes): the agent keeps only a few unacknowledged, so more means a broken
//! or hostile sender. The technician's viewer and the session-log replay both use it, so a
//! replay reorders exactly as the live viewer did.

use std::collections::BTreeMap;

use crate::peer::{CodecOp, ScreenUpdate};

/// Why an update cannot be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("update {seq} arrived twice or after it was applied")]
    Stale { seq: u64 },
    #[error("update {seq} is too far ahead (expecting {expected})")]
    TooFarAhead { seq: u64, expected: u64 },
    #[error(
        "update {seq} would make {bytes} bytes of updates wait for update {expected}; at most \
         {max} may"
    )]
    TooMuchHeld {
        seq: u64,
        expected: u64,
        bytes: usize,
        max: usize,
    },
}

/// The memory an update holds while it waits: its tile data, its video pictures and its ops.
pub fn held_bytes(update: &ScreenUpdate) -> usize {
    let video: usize = update
        .ops
        .iter()
        .map(|op| match op {
            CodecOp::Video { data, .. } => data.len(),
            _ => 0,
        })
        .sum();
    update.tile_data.len() + video + update.ops.len() * std::mem::size_of::<CodecOp>()
}

pub struct InOrder {
    next_seq: u64,
    early: BTreeMap<u64, ScreenUpdate>,
    max_early: usize,
    /// [`held_bytes`] of the updates in `early`, and their most.
    bytes: usize,
    max_bytes: usize,
}

impl InOrder {
    /// Expects update 1 first; holds at most `max_early` back, whatever their size.
    pub fn new(max_early: usize) -> Self {
        Self::with_byte_limit(max_early, usize::MAX)
    }

    /// Expects update 1 first; holds at most `max_early` back, of at most `max_bytes` together
    /// ([`held_bytes`]). The update all others wait for is taken whatever its size.
    pub fn with_byte_limit(max_early: usize, max_bytes: usize) -> Self {
        Self {
            next_seq: 1,
            early: BTreeMap::new(),
            max_early,
            bytes: 0,
            max_bytes,
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
        let size = held_bytes(&update);
        let bytes = self.bytes.saturating_add(size);
        if seq != self.next_seq && bytes > self.max_bytes {
            return Err(OrderError::TooMuchHeld {
                seq,
                expected: self.next_seq,
                bytes,
                max: self.max_bytes,
            });
        }
        self.bytes = bytes;
        self.early.insert(seq, update);
        Ok(())
    }

    /// The next update in sequence, if it is here.
    pub fn pop(&mut self) -> Option<ScreenUpdate> {
        let u = self.early.remove(&self.next_seq)?;
        self.bytes -= held_bytes(&u);
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

    #[test]
    fn updates_held_back_are_capped_in_bytes() {
        let sized = |seq: u64, n: usize| ScreenUpdate {
            tile_data: vec![0; n],
            ..update(seq)
        };
        let mut o = InOrder::with_byte_limit(8, 1000);
        o.push(sized(2, 600)).unwrap();
        assert!(matches!(
            o.push(sized(3, 600)),
            Err(OrderError::TooMuchHeld {
                seq: 3,
                expected: 1,
                ..
            })
        ));
        // The one they wait for is taken whatever its size, and frees what it unblocks.
        o.push(sized(1, 5000)).unwrap();
        assert_eq!(o.pop().map(|u| u.seq), Some(1));
        assert_eq!(o.pop().map(|u| u.seq), Some(2));
        assert_eq!(o.bytes, 0);
        o.push(sized(4, 900)).unwrap();
    }
}
