//! The changed rows of a delta checkpoint, packed: what an update of 50
//! articles changes in the hashed classifier is about 36,000 rows of ten
//! 32-bit floats, 1.6 MB as plain tensors, most of whose bits did not
//! change.
//!
//! Row numbers are stored as the gaps between them (ascending, so small
//! numbers); values as the exclusive or of their bits with what the row held
//! in the version before, when the update recorded that (an adaptive step
//! leaves the sign, the exponent and the leading mantissa bits of most
//! weights as they were, so those bits are zero). Either way the 32-bit
//! words are split into byte planes (all first bytes, then all second
//! bytes, …), which puts the zero bytes together, and the planes are
//! compressed with zstd. Low bits that are zero in every word (the hashed
//! models keep 16 mantissa bits, so an exclusive or of two of their
//! weights ends in 7 zero bits) are shifted out first: the planes then hold
//! only bits that carry something, which packs a little smaller and, above
//! all, unpacks faster. Decoding is exact: the loader has the version
//! before, applies the same exclusive or and gets the very bits written.
//!
//! A chain of deltas is unpacked first and written in one sweep over the
//! table, a slice of rows at a time, every delta in order within the slice:
//! the slice stays in cache while the deltas write into it, instead of each
//! delta walking the whole table (about 40,000 scattered rows of a 9.4 MB
//! table per news update).
//!
//! Bytes are in the machine's order: checkpoints move between the
//! little-endian machines this library builds for (x86-64, aarch64).

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// zstd's fastest level that still finds the zero planes: level 1 packs a
/// news update to within a few percent of level 3, in less time, on the
/// update thread.
const LEVEL: i32 = 1;

/// How one variable's changed rows were packed (kept in the checkpoint's
/// metadata, beside the packed bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackedPart {
    /// The shape of the rows' values (rows first).
    pub shape: Vec<i64>,
    /// Whether the values are the exclusive or with the version before.
    pub xor: bool,
    /// How many low bits, zero in every word, were shifted out before
    /// packing (absent, so 0, in deltas written before this existed).
    #[serde(default)]
    pub shift: u32,
}

impl PackedPart {
    fn elements(&self) -> Result<usize, String> {
        self.shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
            .ok_or_else(|| format!("invalid packed shape {:?}", self.shape))
    }
}

/// Whether a variable of this kind can be packed (32-bit floats; anything
/// else is stored as a plain tensor).
pub fn packable(values: &Tensor) -> bool {
    values.kind() == Kind::Float
}

/// Packs ascending row numbers (int64, all below 2³²).
pub fn pack_rows(rows: &Tensor) -> Result<Vec<u8>, String> {
    let rows = Vec::<i64>::try_from(rows.contiguous()).map_err(|e| e.to_string())?;
    let mut previous = 0i64;
    let mut gaps = Vec::with_capacity(rows.len());
    for row in rows {
        let gap = u32::try_from(row - previous).map_err(|_| format!("row {row} after {previous}"))?;
        gaps.push(gap);
        previous = row;
    }
    compress_words(&gaps)
}

/// The row numbers packed by [`pack_rows`], `count` of them.
pub fn unpack_rows(bytes: &[u8], count: usize) -> Result<Vec<i64>, String> {
    let gaps = decompress_words(bytes, count)?;
    let mut row = 0i64;
    Ok(gaps
        .into_iter()
        .map(|gap| {
            row += i64::from(gap);
            row
        })
        .collect())
}

/// Packs `values` (32-bit floats, rows first), against `before` (the same
/// rows in the version before, same shape) when given.
pub fn pack_values(values: &Tensor, before: Option<&Tensor>) -> Result<(Vec<u8>, PackedPart), String> {
    let shape = values.size();
    let before = before.filter(|b| b.size() == shape && b.kind() == values.kind());
    let mut words = bits(values)?;
    if let Some(before) = before {
        for (word, old) in words.iter_mut().zip(bits(before)?) {
            *word ^= old;
        }
    }
    // Capped at 31 so that all-zero words (nothing changed) shift by a
    // valid amount.
    let shift = words.iter().fold(0, |all, w| all | w).trailing_zeros().min(31);
    if shift > 0 {
        words.iter_mut().for_each(|w| *w >>= shift);
    }
    let part = PackedPart {
        shape,
        xor: before.is_some(),
        shift,
    };
    Ok((compress_words(&words)?, part))
}

/// One variable's changed rows in one delta, unpacked and checked against
/// the variable's shape: ready to be written by [`write_in_order`].
#[derive(Debug)]
pub struct Unpacked {
    /// Ascending row numbers, each inside the variable.
    rows: Vec<i64>,
    /// The rows' words, `rows.len() × width`.
    words: Vec<u32>,
    /// Whether the words are exclusive ors with the row's bits before.
    xor: bool,
}

/// The words [`pack_values`] packed as `part`: the values' bits, or their
/// exclusive or with the version before.
pub fn unpack_words(bytes: &[u8], part: &PackedPart) -> Result<Vec<u32>, String> {
    if part.shift > 31 {
        return Err(format!("a shift of {} bits in 32-bit words", part.shift));
    }
    let mut words = decompress_words(bytes, part.elements()?)?;
    if part.shift > 0 {
        words.iter_mut().for_each(|w| *w <<= part.shift);
    }
    Ok(words)
}

impl Unpacked {
    /// The `words` [`unpack_words`] gave for `rows` (ascending, as
    /// [`unpack_rows`] gives them), checked against a variable of shape
    /// `table_shape`.
    pub fn checked(
        table_shape: &[i64],
        rows: Vec<i64>,
        words: Vec<u32>,
        part: &PackedPart,
    ) -> Result<Unpacked, String> {
        if part.shape.first().copied() != i64::try_from(rows.len()).ok()
            || part.shape.get(1..) != table_shape.get(1..)
            || Some(words.len()) != part.elements().ok()
        {
            return Err(format!(
                "{} rows of shape {:?} packed for a variable of shape {table_shape:?}",
                rows.len(),
                part.shape
            ));
        }
        let height = table_shape.first().copied().unwrap_or(0);
        let mut previous = 0;
        for &row in &rows {
            if row < previous || row >= height {
                return Err(format!("row {row} after {previous} in a variable of {height} rows"));
            }
            previous = row;
        }
        Ok(Unpacked {
            rows,
            words,
            xor: part.xor,
        })
    }
}

/// Rows a slice of the sweep in [`write_in_order`] holds: 2,048 rows of
/// the news classifier (9 words) are 72 KB, well inside a core's L2 cache.
const SWEEP_ROWS: usize = 2_048;

/// Writes `changes` (consecutive deltas of one variable, oldest first, each
/// checked against a variable of this shape) into `table`, that variable's
/// bits in the version before the first of them. The table is cut into as
/// many bands of rows as the machine has cores, each written on its own
/// thread (no row is in two bands, so the bands need nothing from each
/// other).
pub fn write_in_order(table: &mut [u32], changes: &[Unpacked]) {
    let Some(width) = changes
        .iter()
        .find_map(|c| c.words.len().checked_div(c.rows.len()))
        .filter(|&w| w > 0)
    else {
        return;
    };
    let height = table.len() / width;
    let band = height
        .div_ceil(super::cores())
        .next_multiple_of(SWEEP_ROWS)
        .max(SWEEP_ROWS);
    if band >= height {
        return write_band(table, 0, width, changes);
    }
    std::thread::scope(|scope| {
        for (at, rows) in table.chunks_mut(band * width).enumerate() {
            let first = at * band;
            scope.spawn(move || write_band(rows, first, width, changes));
        }
    });
}

/// [`write_in_order`] for the rows from `first` that `band` holds.
fn write_band(band: &mut [u32], first: usize, width: usize, changes: &[Unpacked]) {
    let height = band.len() / width;
    let mut next: Vec<usize> = changes
        .iter()
        .map(|c| c.rows.partition_point(|&r| (r as usize) < first))
        .collect();
    for start in (first..first + height).step_by(SWEEP_ROWS) {
        let end = (start + SWEEP_ROWS).min(first + height) as i64;
        for (change, at) in changes.iter().zip(&mut next) {
            let rows = change.rows[*at..].iter().take_while(|&&r| r < end);
            for (row, new) in rows.zip(change.words[*at * width..].chunks_exact(width)) {
                let row = *row as usize - first;
                let old = &mut band[row * width..(row + 1) * width];
                match change.xor {
                    true => old.iter_mut().zip(new).for_each(|(o, n)| *o ^= n),
                    false => old.copy_from_slice(new),
                }
                *at += 1;
            }
        }
    }
}

/// A float tensor of `shape` from the bits [`bits`] gave.
pub fn from_bits(words: Vec<u32>, shape: &[i64]) -> Result<Tensor, String> {
    let values: Vec<f32> = words.into_iter().map(f32::from_bits).collect();
    Tensor::f_from_slice(&values)
        .and_then(|t| t.f_reshape(shape))
        .map_err(|e| e.to_string())
}

/// The bits of a float tensor's elements, in order.
pub fn bits(values: &Tensor) -> Result<Vec<u32>, String> {
    let values = values
        .f_to_device(tch::Device::Cpu)
        .and_then(|v| v.f_contiguous())
        .and_then(|v| v.f_flatten(0, -1))
        .map_err(|e| e.to_string())?;
    let floats = Vec::<f32>::try_from(&values).map_err(|e| e.to_string())?;
    Ok(floats.into_iter().map(f32::to_bits).collect())
}

/// Byte planes of the words, compressed.
fn compress_words(words: &[u32]) -> Result<Vec<u8>, String> {
    let n = words.len();
    let mut planes = vec![0u8; n * 4];
    let (first, rest) = planes.split_at_mut(n);
    let (second, rest) = rest.split_at_mut(n);
    let (third, fourth) = rest.split_at_mut(n);
    for ((((word, a), b), c), d) in words.iter().zip(first).zip(second).zip(third).zip(fourth) {
        [*a, *b, *c, *d] = word.to_ne_bytes();
    }
    zstd::bulk::compress(&planes, LEVEL).map_err(|e| e.to_string())
}

/// `count` words from [`compress_words`]'s bytes.
fn decompress_words(bytes: &[u8], count: usize) -> Result<Vec<u32>, String> {
    let planes = zstd::bulk::decompress(bytes, count * 4).map_err(|e| e.to_string())?;
    if planes.len() != count * 4 {
        return Err(format!("{} packed bytes, {} expected", planes.len(), count * 4));
    }
    let (first, rest) = planes.split_at(count);
    let (second, rest) = rest.split_at(count);
    let (third, fourth) = rest.split_at(count);
    Ok(first
        .iter()
        .zip(second)
        .zip(third)
        .zip(fourth)
        .map(|(((&a, &b), &c), &d)| u32::from_ne_bytes([a, b, c, d]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_values_round_trip_bit_exactly() {
        let rows = [3i64, 4, 90, 70_000, 4_000_000_000];
        let back = unpack_rows(&pack_rows(&Tensor::from_slice(&rows)).unwrap(), 5).unwrap();
        assert_eq!(back, rows);

        let cpu = (Kind::Float, tch::Device::Cpu);
        let table = Tensor::randn([6, 9], cpu);
        let rows = [1i64, 4, 5];
        let index = Tensor::from_slice(&rows);
        let before = table.index_select(0, &index);
        let after = &before - 0.01 * Tensor::randn([3, 9], cpu);
        let expected = table.index_copy(0, &index, &after);
        for against in [None, Some(&before)] {
            let (bytes, part) = pack_values(&after, against).unwrap();
            assert_eq!(part.xor, against.is_some());
            let mut words = bits(&table).unwrap();
            let changed = unpack_words(&bytes, &part).unwrap();
            let unpacked = Unpacked::checked(&table.size(), rows.to_vec(), changed, &part).unwrap();
            write_in_order(&mut words, &[unpacked]);
            assert_eq!(words, bits(&expected).unwrap());
            assert!(from_bits(words, &table.size()).unwrap().equal(&expected));
        }
    }

    /// Values whose low `zeros` bits are zero, as the hashed models keep them.
    fn with_low_zeros(values: &Tensor, zeros: u32) -> Tensor {
        let words: Vec<u32> = bits(values).unwrap().into_iter().map(|w| w >> zeros << zeros).collect();
        from_bits(words, &values.size()).unwrap()
    }

    #[test]
    fn a_chain_written_in_one_sweep_is_each_delta_written_in_turn() {
        // Rows spread over several slices of the sweep, deltas that rewrite
        // rows an earlier one wrote, packed against the version before and
        // not, with and without low zero bits.
        let cpu = (Kind::Float, tch::Device::Cpu);
        let height = 3 * SWEEP_ROWS as i64 + 17;
        let start = with_low_zeros(&Tensor::randn([height, 3], cpu), 7);
        let mut expected = start.copy();
        let mut changes = Vec::new();
        for (delta, step) in [7i64, 3, 11, 2, 5].into_iter().enumerate() {
            let rows: Vec<i64> = (delta as i64..height).step_by(step as usize).collect();
            let index = Tensor::from_slice(&rows);
            let before = expected.index_select(0, &index);
            let fresh = &before + 0.1 * Tensor::randn([rows.len() as i64, 3], cpu);
            let rounded = delta != 4;
            let after = if rounded { with_low_zeros(&fresh, 7) } else { fresh };
            let (bytes, part) = pack_values(&after, (delta != 3).then_some(&before)).unwrap();
            assert_eq!(part.shift >= 7, rounded, "delta {delta}: shift {}", part.shift);
            let words = unpack_words(&bytes, &part).unwrap();
            changes.push(Unpacked::checked(&expected.size(), rows, words, &part).unwrap());
            expected = expected.index_copy(0, &index, &after);
        }
        let mut words = bits(&start).unwrap();
        write_in_order(&mut words, &changes);
        assert_eq!(words, bits(&expected).unwrap());
    }

    #[test]
    fn a_part_written_before_shifts_existed_reads_as_unshifted() {
        let part: PackedPart = serde_json::from_str(r#"{"shape":[2,9],"xor":true}"#).unwrap();
        assert_eq!((part.shift, part.xor, part.shape), (0, true, vec![2, 9]));
    }

    #[test]
    fn rows_out_of_order_and_wrong_counts_are_errors() {
        assert!(pack_rows(&Tensor::from_slice(&[5i64, 2])).is_err());
        let bytes = pack_rows(&Tensor::from_slice(&[1i64, 2])).unwrap();
        assert!(unpack_rows(&bytes, 3).is_err());
        let values = Tensor::ones([2, 2], (Kind::Float, tch::Device::Cpu));
        let (bytes, part) = pack_values(&values, Some(&values)).unwrap();
        let words = unpack_words(&bytes, &part).unwrap();
        let checked = |shape: &[i64], rows: Vec<i64>| Unpacked::checked(shape, rows, words.clone(), &part);
        // Too few rows, a wider variable, a row past its end, rows out of order.
        assert!(checked(&[3, 2], vec![0]).is_err());
        assert!(checked(&[2, 3], vec![0, 1]).is_err());
        assert!(checked(&[3, 2], vec![0, 3]).is_err());
        assert!(checked(&[3, 2], vec![2, 0]).is_err());
        assert!(checked(&[3, 2], vec![0, 2]).is_ok());
        assert!(
            Unpacked::checked(&[3, 2], vec![0, 2], vec![0; 3], &part).is_err(),
            "too few words"
        );
        let beyond = PackedPart { shift: 32, ..part };
        assert!(unpack_words(&bytes, &beyond).is_err(), "a shift past the word");
    }
}
