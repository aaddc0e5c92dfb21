//! Large files whose bytes differ from one offset to the next (a byte out of place shows in a
//! hash), written fast, for the file transfers' tests and bench.

use std::io::Write;
use std::path::Path;

/// Writes `size` such bytes to `path`, showing each block written to `each` (to hash it).
pub fn write_varied(path: &Path, size: u64, mut each: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut block = vec![0u8; 1 << 20];
    // xorshift64: cheap, and no two neighbouring 8-byte words alike.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        each(&block[..n]);
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.flush()
}
